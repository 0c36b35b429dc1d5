//! The service as the shield knows it: a thread group and the moment its leader started, so a
//! process that inherits the number after the service died is not taken for it. The kernel
//! knows both by their values in the initial namespaces; what /proc shows a process in a time
//! namespace of its own is shifted by its boot clock's offset, which goes to the programs too,
//! and a process in a pid namespace of its own has another number there, which it cannot learn.

/// A thread group: its id and its leader's start, in clock ticks since boot (USER_HZ), as
/// `/proc/PID/stat` shows them to this process, and the offset (ns) of this process's boot
/// clock against the kernel's (its time namespace's), which that start includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub tgid: u32,
    pub start_ticks: u64,
    pub boottime_offset_ns: i64,
}

impl Task {
    /// The calling process. An error when it runs in a pid namespace of its own: the kernel
    /// knows it by a number it cannot see, and the shield would take it for a stranger.
    pub fn current() -> std::io::Result<Task> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let nested = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .is_some_and(|ids| ids.split_whitespace().count() > 1);
        // Kernel threads (kthreadd is pid 2) are seen only from the initial pid namespace.
        let kthreadd = std::fs::read_to_string("/proc/2/stat")
            .ok()
            .and_then(|stat| flags(&stat))
            .is_some_and(|f| f & PF_KTHREAD != 0);
        if nested || !kthreadd {
            return Err(std::io::Error::other(
                "this process runs in a pid namespace of its own: the kernel knows it by \
                 another number (run the service in the host's pid namespace)",
            ));
        }
        Task::of(std::process::id())
    }

    /// The process `pid`, while it runs (its number as this process's namespace shows it).
    pub fn of(pid: u32) -> std::io::Result<Task> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let start_ticks = start_ticks(&stat).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("/proc/{pid}/stat has no start time"),
            )
        })?;
        // The reader's offset is what /proc adds (and none without time namespaces).
        let boottime_offset_ns = match std::fs::read_to_string("/proc/self/timens_offsets") {
            Ok(offsets) => boottime_offset_ns(&offsets).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("/proc/self/timens_offsets has no boot time offset: {offsets:?}"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Task {
            tgid: pid,
            start_ticks,
            boottime_offset_ns,
        })
    }
}

/// The kernel's mark of its own threads in a task's flags.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of a `/proc/PID/stat` line from field 3 (the state) on: the command name before
/// them is in parentheses and may hold spaces and parentheses itself.
fn after_name(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace())
}

/// Field 22 of a `/proc/PID/stat` line: the start time.
fn start_ticks(stat: &str) -> Option<u64> {
    after_name(stat)?.nth(19)?.parse().ok()
}

/// Field 9 of a `/proc/PID/stat` line: the task's flags.
fn flags(stat: &str) -> Option<u64> {
    after_name(stat)?.nth(6)?.parse().ok()
}

/// The boot clock's offset in a `/proc/PID/timens_offsets` text ("boottime SECS NSECS").
fn boottime_offset_ns(offsets: &str) -> Option<i64> {
    offsets.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        if f.next()? != "boottime" {
            return None;
        }
        let secs: i64 = f.next()?.parse().ok()?;
        let nsecs: i64 = f.next()?.parse().ok()?;
        secs.checked_mul(1_000_000_000)?.checked_add(nsecs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_read_past_a_name_with_spaces_and_parentheses() {
        let stat =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_ticks(stat), Some(987654));
        assert_eq!(start_ticks("12 (x) S 1"), None);
        assert_eq!(flags(stat), Some(4194560));
    }

    #[test]
    fn the_boot_clock_offset_is_read_in_nanoseconds() {
        let offsets = "monotonic 0 0\nboottime 2592000 5\n";
        assert_eq!(boottime_offset_ns(offsets), Some(2_592_000_000_000_005));
        assert_eq!(
            boottime_offset_ns("boottime -10 0\n"),
            Some(-10_000_000_000)
        );
        assert_eq!(boottime_offset_ns("monotonic 0 0\n"), None);
    }

    /// Run by the next test inside a pid namespace: prints what `Task::current` said.
    #[test]
    #[ignore = "run by a_process_in_a_pid_namespace_of_its_own_is_not_taken_for_the_service"]
    fn current_task_probe() {
        match Task::current() {
            Ok(t) => println!("PROBE ok {}", t.tgid),
            Err(e) => println!("PROBE refused: {e}"),
        }
    }

    #[test]
    fn a_process_in_a_pid_namespace_of_its_own_is_not_taken_for_the_service() {
        assert!(Task::current().is_ok(), "the host's pid namespace");
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped in a pid namespace: needs root (unshare --pid)");
            return;
        }
        let me = std::env::current_exe().unwrap();
        // With a /proc of its own (only itself and its children in sight) and with the
        // host's (where its NSpid line names both numbers).
        for mount_proc in [true, false] {
            let mut cmd = std::process::Command::new("unshare");
            cmd.args(["--pid", "--fork"]);
            if mount_proc {
                cmd.arg("--mount-proc");
            }
            let out = cmd
                .arg(&me)
                .args(["--exact", "task::tests::current_task_probe", "--ignored"])
                .args(["--nocapture", "--test-threads=1"])
                .output()
                .expect("unshare (util-linux)");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("PROBE refused: this process runs in a pid namespace of its own"),
                "--mount-proc {mount_proc}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn this_process_has_a_start_time_at_or_after_boot() {
        let me = Task::current().unwrap();
        assert_eq!(me.tgid, std::process::id());
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            me.start_ticks <= (uptime * 100.0) as u64 + 1,
            "{me:?} after {uptime}s"
        );
    }
}
