//! The service as the shield knows it: a thread group and the moment its leader started, so a
//! process that inherits the number after the service died is not taken for it.

/// A thread group: its id and its leader's start, in clock ticks since boot (USER_HZ), as
/// `/proc/PID/stat` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub tgid: u32,
    pub start_ticks: u64,
}

impl Task {
    /// The calling process.
    pub fn current() -> std::io::Result<Task> {
        Task::of(std::process::id())
    }

    /// The process `pid`, while it runs.
    pub fn of(pid: u32) -> std::io::Result<Task> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let start_ticks = start_ticks(&stat).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("/proc/{pid}/stat has no start time"),
            )
        })?;
        Ok(Task {
            tgid: pid,
            start_ticks,
        })
    }
}

/// Field 22 of a `/proc/PID/stat` line (the start time), counted after the command name, which
/// is in parentheses and may hold spaces and parentheses itself.
fn start_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) is the first after the name: field 22 is the 20th from there.
    after_name.split_whitespace().nth(19)?.parse().ok()
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
