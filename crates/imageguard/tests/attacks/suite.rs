//! The suite's orchestration: build the volume (before protection, as a real machine has it),
//! start a process holding descriptors from before protection, protect, run every technique as
//! an uncertified child, and compare every backup's SHA-256 before and after.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use imageguard::sandbox::Sandbox;

use crate::common::drive::Drive;
use crate::common::*;

/// What a technique came to: the error that stopped it, or that it went through.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Succeeded,
    Errno(i32),
    /// Anything else a tool reported (its first line of stderr).
    Failed(String),
    /// A technique with a composite observation (storms, namespaces).
    Note(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Succeeded => f.write_str("succeeded"),
            Outcome::Errno(e) => f.write_str(errno_name(*e)),
            Outcome::Failed(s) => write!(f, "failed: {s}"),
            Outcome::Note(s) => f.write_str(s),
        }
    }
}

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EROFS => "EROFS",
        libc::EBADF => "EBADF",
        libc::EINVAL => "EINVAL",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ESTALE => "ESTALE",
        libc::ENOENT => "ENOENT",
        libc::EXDEV => "EXDEV",
        libc::ENOTCONN => "ENOTCONN",
        libc::ENOSYS => "ENOSYS",
        libc::EEXIST => "EEXIST",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EBUSY => "EBUSY",
        _ => "other errno",
    }
}

/// Map a tool's failure message to the errno it printed (in any case: rclone writes Go's
/// lower-case messages).
pub(crate) fn outcome_of_tool(o: &Output) -> Outcome {
    if o.status.success() {
        return Outcome::Succeeded;
    }
    let err = String::from_utf8_lossy(&o.stderr);
    let lower = err.to_lowercase();
    for (text, e) in [
        ("operation not permitted", libc::EPERM),
        ("permission denied", libc::EACCES),
        ("read-only file system", libc::EROFS),
        ("no such file or directory", libc::ENOENT),
        ("bad file descriptor", libc::EBADF),
        ("transport endpoint is not connected", libc::ENOTCONN),
    ] {
        if lower.contains(text) {
            return Outcome::Errno(e);
        }
    }
    Outcome::Failed(err.lines().next().unwrap_or("").to_string())
}

/// A new backup to spend, alone in a new folder under `scratch/` (an uncertified process may
/// create a backup, but not next to existing ones).
pub(crate) fn scratch_backup(volume: &Path, name: &str) -> PathBuf {
    let dir = volume.join("scratch").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("spent.mrimg");
    let data: Vec<u8> = (0..4096u32)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(9))
        .collect();
    if let Err(e) = std::fs::write(&p, data) {
        // Say who refused it: the sandbox's last denials (its state folder is beside the volume).
        let db = volume.with_file_name("state").join("events.db");
        let last: Vec<String> = imageguard_eventstore::EventDb::open_read_only(&db)
            .and_then(|db| db.query(&imageguard_eventstore::EventFilter::default()))
            .map(|evs| {
                evs.iter()
                    .rev()
                    .filter(|e| e.id == 320)
                    .take(5)
                    .map(|e| e.message.clone())
                    .collect()
            })
            .unwrap_or_default();
        panic!(
            "the suite writing {}: {e}; last denials: {last:#?}",
            p.display()
        );
    }
    p
}

/// An attacker's answer: `ok` or `errno N`.
pub(crate) fn parse_answer(text: &str) -> Option<Outcome> {
    if text == "ok" {
        Some(Outcome::Succeeded)
    } else {
        let n = text.strip_prefix("errno ")?;
        Some(Outcome::Errno(n.parse().unwrap_or(-1)))
    }
}

fn outcome_of_attacker(o: &Output) -> Outcome {
    let out = String::from_utf8_lossy(&o.stdout);
    let last = out.lines().last().unwrap_or("");
    parse_answer(last)
        .unwrap_or_else(|| Outcome::Failed(format!("attacker said {last:?}: {}", stderr(o))))
}

struct Row {
    technique: String,
    expected: String,
    observed: String,
    intact: bool,
    pass: bool,
}

/// The volume under attack and what is known about it.
pub(crate) struct Ctx {
    pub(crate) sb: Sandbox,
    me: PathBuf,
    /// The main target: an image with an extended attribute.
    pub(crate) image: PathBuf,
    restic_pack: PathBuf,
    restic_config: PathBuf,
    borg_segment: PathBuf,
    /// An ordinary file on the volume.
    ordinary: PathBuf,
    /// A folder outside the volume.
    outside: PathBuf,
    /// Backups whose bytes are checked after every technique.
    watched: BTreeMap<PathBuf, String>,
    /// Drives of the suite's own, given back after the sandbox (declared before them) is.
    drives: Vec<Drive>,
    /// Whether the kernel shield runs (a kernel with the bpf LSM): some rows are refused earlier.
    pub(crate) shield: bool,
    rows: Vec<Row>,
}

impl Ctx {
    fn path(&self, rel: &str) -> PathBuf {
        self.sb.mnt.join(rel)
    }

    fn s(p: &Path) -> String {
        p.display().to_string()
    }

    /// One attacker child running `technique args...`.
    pub(crate) fn attack(&self, args: &[&str]) -> Outcome {
        let o = Command::new(&self.me)
            .arg("--attack")
            .args(args)
            .output()
            .expect("attacker");
        outcome_of_attacker(&o)
    }

    pub(crate) fn shell(&self, script: &str) -> Outcome {
        outcome_of_tool(&sh(script))
    }

    /// How many volumes the service protects now (none when it does not answer).
    pub(crate) fn volume_count(&self) -> usize {
        let st: serde_json::Value =
            serde_json::from_slice(&self.ig(&["status", "--json"]).stdout).unwrap_or_default();
        st["volumes"].as_array().map_or(0, Vec::len)
    }

    /// Run an imageguard command against the suite's service.
    pub(crate) fn ig(&self, args: &[&str]) -> Output {
        self.sb.imageguard(args).expect("imageguard")
    }

    /// Check `path`'s bytes after every later technique too.
    pub(crate) fn watch(&mut self, path: &Path) {
        let h = watched_hashes(std::iter::once(&path.to_path_buf()));
        self.watched.extend(h);
    }

    /// Record a technique: it passes when the outcome is one of `expected` and every watched
    /// backup is unchanged.
    pub(crate) fn record(&mut self, technique: &str, expected: &[&str], observed: Outcome) {
        let now = watched_hashes(self.watched.keys());
        let intact = now == self.watched;
        let shown = observed.to_string();
        let matches = expected
            .iter()
            .any(|e| shown == *e || (e.ends_with('*') && shown.starts_with(&e[..e.len() - 1])));
        // As it goes, so that a run that hangs (in a VM, where nothing else is seen) says
        // after which row.
        eprintln!(
            "attack row {}: {technique}: {shown}{}",
            self.rows.len() + 1,
            if matches && intact { "" } else { " (FAILS)" }
        );
        self.rows.push(Row {
            technique: technique.to_string(),
            expected: expected.join(" or "),
            observed: shown,
            intact,
            pass: matches && intact,
        });
        if !intact {
            // Later rows are judged against the damaged state, so this one alone fails.
            self.watched = now;
        }
    }
}

fn watched_hashes<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> BTreeMap<PathBuf, String> {
    paths
        .map(|p| {
            let h = std::fs::File::open(p)
                .ok()
                .and_then(|f| imageguard_identity::hashing::sha256_hex(f).ok())
                .unwrap_or_else(|| "MISSING".into());
            (p.clone(), h)
        })
        .collect()
}

/// Every backup file on the volume (what the attack must leave byte-identical): all files but
/// the scratch folder, the lock files readers create, and ordinary files.
fn all_backups(sb: &Sandbox) -> BTreeMap<PathBuf, String> {
    hashes(&sb.mnt)
        .into_iter()
        .filter(|(p, _)| {
            let rel = p
                .strip_prefix(&sb.mnt)
                .unwrap()
                .to_string_lossy()
                .to_string();
            !(rel.starts_with("scratch/")
                || rel.starts_with("restic-repo/locks/")
                || rel.starts_with("borg-repo/lock")
                || rel.ends_with(".txt"))
        })
        .collect()
}

fn first_file_under(dir: &Path) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                return e.path();
            }
        }
    }
    panic!("no file under {}", dir.display())
}

/// Build the volume as a machine has it before imageguard: images, a world-writable backup,
/// 10 000 small backups, a restic and a borg repository.
fn populate(sb: &Sandbox) {
    let m = &sb.mnt;
    for d in ["images", "world", "storm", "scratch", "other", "top/nested"] {
        std::fs::create_dir_all(m.join(d)).unwrap();
    }
    write_pattern(&m.join("images/disk-1.mrimg"), 2 << 20, 1);
    write_pattern(&m.join("images/disk-2.mrimg"), 1 << 20, 2);
    write_pattern(&m.join("images/db.mrbak"), 300_000, 3);
    write_pattern(&m.join("notes.txt"), 1000, 4);
    write_pattern(&m.join("top/nested/deep.mrimg"), 50_000, 6);
    assert_ok(
        "tag",
        &sh(&format!(
            "setfattr -n user.tag -v 1 {}",
            m.join("images/disk-1.mrimg").display()
        )),
    );
    write_pattern(&m.join("world/shared.mrimg"), 65536, 5);
    assert_ok(
        "world-writable",
        &sh(&format!(
            "chmod 1777 {0}/world && chmod 0666 {0}/world/shared.mrimg && chmod 0755 {0}",
            m.display()
        )),
    );
    for i in 0..10_000 {
        std::fs::write(
            m.join(format!("storm/s{i:05}.mrbak")),
            format!("backup {i}\n"),
        )
        .unwrap();
    }
    let repo = m.join("restic-repo");
    assert_ok("restic init", &restic(sb, &repo, &["init"]));
    let src = source_tree(sb, 1);
    assert_ok(
        "restic backup",
        &restic(sb, &repo, &["backup", "--quiet", src.to_str().unwrap()]),
    );
    let b = m.join("borg-repo");
    let r = b.to_str().unwrap();
    assert_ok("borg init", &borg(sb, &["init", "-e", "none", r]));
    assert_ok(
        "borg config",
        &borg(sb, &["config", r, "max_segment_size", "8388608"]),
    );
    assert_ok(
        "borg create",
        &borg(sb, &["create", &format!("{r}::one"), src.to_str().unwrap()]),
    );
}

/// A process holding descriptors opened before protection (see `attacker::hold`).
struct Holder {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Holder {
    fn start(me: &Path, dir: &Path, name: &str) -> Holder {
        let mut child = Command::new(me)
            .args(["--attack", "hold"])
            .arg(dir)
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("holder");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "holder did not start");
        Holder { child, out }
    }

    /// Let it use its descriptors now; one outcome per step.
    fn go(mut self) -> Vec<(String, Outcome)> {
        writeln!(self.child.stdin.as_mut().unwrap(), "go").unwrap();
        let mut steps = vec![];
        for line in self.out.lines().map_while(Result::ok) {
            let mut parts = line.splitn(2, ' ');
            let name = parts.next().unwrap_or("").to_string();
            if let Some(o) = parse_answer(parts.next().unwrap_or("")) {
                steps.push((name, o));
            }
        }
        let _ = self.child.wait();
        steps
    }
}

/// A copy of `program` in the sandbox (not certified: a copy never is).
pub(crate) fn sandbox_copy(sb: &Sandbox, program: &str, name: &str) -> PathBuf {
    let dst = sb.path().join("bin").join(name);
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(program, &dst).unwrap();
    dst
}

/// Copy `program` into the sandbox and certify the copy.
pub(crate) fn certified_copy(sb: &Sandbox, program: &str, name: &str, force: bool) -> PathBuf {
    let dst = sandbox_copy(sb, program, name);
    certify(sb, &dst, force);
    dst
}

/// `cmd` as a shell script run by a non-root user (nobody).
pub(crate) fn as_nobody(cmd: &str) -> String {
    format!("setpriv --reuid=65534 --regid=65534 --clear-groups sh -c '{cmd}'")
}

/// A named group of rows (`IMAGEGUARD_ATTACK_GROUPS` picks groups by these names).
type Group = (&'static str, fn(&mut Ctx));

pub fn run() -> usize {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the attack suite mounts file systems: run it as root"
    );
    // IMAGEGUARD_ATTACK_GROUPS=retention,helpers runs those groups alone (a quicker look in a
    // VM); the checks after them (every backup unchanged, both repositories verify) always run.
    let only = std::env::var("IMAGEGUARD_ATTACK_GROUPS").unwrap_or_default();
    let want = |g: &str| only.is_empty() || only.split(',').any(|o| o.trim() == g);
    const GROUPS: [&str; 15] = [
        "writes",
        "truncation",
        "names",
        "metadata",
        "descriptors",
        "mounts",
        "identities",
        "closure",
        "helpers",
        "repositories",
        "sync_tools",
        "definition_trust",
        "definitions",
        "folders",
        "retention",
    ];
    if !only.is_empty() {
        for g in only.split(',') {
            assert!(
                GROUPS.contains(&g.trim()),
                "IMAGEGUARD_ATTACK_GROUPS: no group {g:?} (groups: {})",
                GROUPS.join(",")
            );
        }
        println!("attack groups: {only} only");
    }
    let started = Instant::now();
    let me = std::env::current_exe().unwrap();
    let mut sb = Sandbox::new(&exe(), 512).expect("sandbox");
    populate(&sb);
    crate::sync_tools::prepare(&sb);
    crate::retention::prepare(&sb);
    crate::repositories::prepare(&sb);
    crate::definition_trust::prepare(&sb);
    let holder = Holder::start(&me, &sb.mnt.join("images"), "disk-2.mrimg");
    sb.start_service().expect("service");
    let out = sb
        .imageguard(&["protect", &sb.mnt.to_string_lossy()])
        .unwrap();
    assert_ok("protect", &out);
    // Which enforcement the suite meets: the FUSE guard alone, or with the kernel shield (a
    // kernel with the bpf LSM: the same rows, a few of them refused earlier).
    let status = crate::common::status(&sb);
    println!(
        "kernel shield: {}",
        status["kernel_shield"].as_str().unwrap_or("?")
    );
    certify(&sb, Path::new("/usr/bin/restic"), false);
    certify(&sb, Path::new("/usr/bin/borg"), false);
    // A certified backup after protection, as the nightly job would run it.
    let src = source_tree(&sb, 2);
    assert_ok(
        "certified restic backup",
        &restic(
            &sb,
            &sb.mnt.join("restic-repo"),
            &["backup", "--quiet", src.to_str().unwrap()],
        ),
    );
    let before_all = all_backups(&sb);
    let m = sb.mnt.clone();
    let restic_pack = first_file_under(&m.join("restic-repo/data"));
    let borg_segment = first_file_under(&m.join("borg-repo/data"));
    let mut watched: Vec<PathBuf> = [
        "images/disk-1.mrimg",
        "images/disk-2.mrimg",
        "images/db.mrbak",
        "world/shared.mrimg",
        "restic-repo/config",
        "borg-repo/config",
        "storm/s00000.mrbak",
    ]
    .iter()
    .map(|r| m.join(r))
    .collect();
    watched.push(restic_pack.clone());
    watched.push(borg_segment.clone());
    let outside = sb.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let mut cx = Ctx {
        image: m.join("images/disk-1.mrimg"),
        restic_config: m.join("restic-repo/config"),
        ordinary: m.join("notes.txt"),
        watched: watched_hashes(watched.iter()),
        restic_pack,
        borg_segment,
        outside,
        me,
        shield: status["kernel_shield_on"] == true,
        sb,
        drives: vec![],
        rows: vec![],
    };
    let groups: [Group; 4] = [
        ("writes", writes),
        ("truncation", truncation_and_space),
        ("names", names),
        ("metadata", metadata_and_copies),
    ];
    for (name, group) in groups {
        if want(name) {
            group(&mut cx);
        }
    }
    let steps = holder.go();
    for (step, o) in steps.into_iter().filter(|_| want("descriptors")) {
        let expected: &[&str] = if step == "write-readonly-fd" {
            &["EBADF"]
        } else {
            &["EROFS"]
        };
        cx.record(
            &format!("descriptor from before protection: {step}"),
            expected,
            o,
        );
    }
    let groups: [Group; 10] = [
        ("mounts", paths_mounts_and_users),
        ("identities", identities),
        ("closure", crate::closure::attacks),
        ("helpers", crate::helpers::attacks),
        ("repositories", crate::repositories::attacks),
        ("sync_tools", crate::sync_tools::attacks),
        ("definition_trust", crate::definition_trust::attacks),
        ("definitions", definitions),
        ("folders", folders_and_storms),
        ("retention", crate::retention::attacks),
    ];
    for (name, group) in groups {
        if want(name) {
            group(&mut cx);
        }
    }

    print_table(&cx.rows);
    let mut failures = cx.rows.iter().filter(|r| !r.pass).count();

    // Nothing changed anywhere, and both repositories verify byte for byte.
    let after_all = all_backups(&cx.sb);
    let changed: Vec<_> = before_all
        .iter()
        .filter(|(p, h)| after_all.get(*p) != Some(*h))
        .map(|(p, _)| p.display().to_string())
        .collect();
    println!(
        "backup files checked (sha256 before/after the suite): {}, changed or missing: {}",
        before_all.len(),
        changed.len()
    );
    if !changed.is_empty() {
        println!("CHANGED: {changed:?}");
        failures += 1;
    }
    let check = restic(
        &cx.sb,
        &cx.sb.mnt.join("restic-repo"),
        &["check", "--read-data"],
    );
    println!(
        "restic check --read-data: {}",
        if check.status.success() {
            "ok"
        } else {
            "FAILED"
        }
    );
    if !check.status.success() {
        println!(
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            stderr(&check)
        );
        failures += 1;
    }
    let r = cx.sb.mnt.join("borg-repo");
    let bcheck = borg(&cx.sb, &["check", "--verify-data", r.to_str().unwrap()]);
    println!(
        "borg check --verify-data: {}",
        if bcheck.status.success() {
            "ok"
        } else {
            "FAILED"
        }
    );
    if !bcheck.status.success() {
        println!("{}", stderr(&bcheck));
        failures += 1;
    }
    let denials = events(&cx.sb).iter().filter(|e| e.id == 320).count();
    println!("events 320 logged: {denials}");
    // The writes group's refusals are logged as 320 (some groups alone log none).
    if denials == 0 && want("writes") {
        failures += 1;
    }
    println!("suite time: {:.1} s", started.elapsed().as_secs_f64());
    failures
}

fn print_table(rows: &[Row]) {
    let w = rows.iter().map(|r| r.technique.len()).max().unwrap_or(10);
    let we = rows
        .iter()
        .map(|r| r.expected.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let wo = rows
        .iter()
        .map(|r| r.observed.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "\n{:<w$}  {:<we$}  {:<wo$}  {:<8}  result",
        "technique", "expected", "observed", "backups"
    );
    println!("{}", "-".repeat(w + we + wo + 24));
    for r in rows {
        println!(
            "{:<w$}  {:<we$}  {:<wo$}  {:<8}  {}",
            r.technique,
            r.expected,
            r.observed,
            if r.intact { "intact" } else { "CHANGED" },
            if r.pass { "pass" } else { "FAIL" }
        );
    }
    println!();
}

fn writes(cx: &mut Ctx) {
    let t = Ctx::s(&cx.image);
    let targets = [
        ("image", cx.image.clone()),
        ("restic pack", cx.restic_pack.clone()),
        ("borg segment", cx.borg_segment.clone()),
    ];
    cx.record(
        "shell redirect > image",
        &["EPERM"],
        cx.shell(&format!("echo x > {t}")),
    );
    cx.record(
        "shell append >> image",
        &["EPERM"],
        cx.shell(&format!("echo x >> {t}")),
    );
    cx.record(
        "dd conv=notrunc into image",
        &["EPERM"],
        cx.shell(&format!(
            "dd if=/dev/urandom of={t} bs=4096 count=1 conv=notrunc status=none"
        )),
    );
    for (what, p) in &targets {
        let p = Ctx::s(p);
        let o = cx.attack(&["open-write", &p]);
        cx.record(&format!("open O_WRONLY + pwrite: {what}"), &["EPERM"], o);
        let o = cx.attack(&["open-trunc", &p]);
        cx.record(&format!("open O_TRUNC: {what}"), &["EPERM"], o);
    }
    let o = cx.attack(&["open-rdonly-trunc", &t]);
    cx.record("open O_RDONLY|O_TRUNC", &["EPERM"], o);
    let o = cx.attack(&["reopen-proc-fd", &t]);
    cx.record(
        "reopen /proc/self/fd/N of a read-only fd for writing",
        &["EPERM"],
        o,
    );
    let o = cx.attack(&["sendfile-into", &Ctx::s(&cx.ordinary), &t]);
    cx.record("sendfile into a backup", &["EPERM"], o);
    let o = cx.shell(&format!("chattr +i {t}"));
    let refused = o != Outcome::Succeeded;
    cx.record(
        "chattr +i / FS_IOC_SETFLAGS",
        &["refused"],
        Outcome::Note(if refused { "refused" } else { "succeeded" }.into()),
    );
    let o = cx.attack(&["odirect", &t]);
    cx.record("O_DIRECT write", &["EPERM"], o);
    cx.record(
        "python os.pwrite",
        &["EPERM"],
        cx.shell(&format!(
            "python3 -c \"import os; fd=os.open('{t}', os.O_WRONLY); os.pwrite(fd, b'x', 0)\""
        )),
    );
    let o = cx.attack(&["writev", &t]);
    cx.record("pwritev", &["EPERM"], o);
    let o = cx.attack(&["append", &t]);
    cx.record("O_APPEND write", &["EPERM"], o);
    let o = cx.attack(&["mmap-rdwr", &t]);
    cx.record("mmap MAP_SHARED write (O_RDWR)", &["EPERM"], o);
    let o = cx.attack(&["mmap-rdonly-shared", &t]);
    cx.record("mmap MAP_SHARED PROT_WRITE of O_RDONLY fd", &["EACCES"], o);
    let o = cx.attack(&["uring-openat-write", &t]);
    cx.record("io_uring openat O_WRONLY + write", &["EPERM"], o);
    let o = cx.attack(&["uring-write-rdonly-fd", &t]);
    cx.record("io_uring write on O_RDONLY fd", &["EBADF"], o);
}

fn truncation_and_space(cx: &mut Ctx) {
    let t = Ctx::s(&cx.image);
    let o = cx.attack(&["truncate", &t]);
    cx.record("truncate(path)", &["EPERM"], o);
    let o = cx.attack(&["ftruncate-rdonly", &t]);
    cx.record("ftruncate of O_RDONLY fd", &["EINVAL", "EBADF"], o);
    cx.record(
        "truncate -s0 (coreutils)",
        &["EPERM"],
        cx.shell(&format!("truncate -s0 {t}")),
    );
    for mode in ["punch", "collapse", "zero"] {
        let o = cx.attack(&["fallocate", mode, &t]);
        cx.record(&format!("fallocate {mode} range"), &["EPERM"], o);
    }
    let o = cx.attack(&["fallocate", "punch", &t, "rdonly"]);
    cx.record("fallocate punch on O_RDONLY fd", &["EBADF"], o);
    cx.record(
        "fallocate -p (util-linux)",
        &["EPERM"],
        cx.shell(&format!("fallocate -p -o 0 -l 4096 {t}")),
    );
}

fn names(cx: &mut Ctx) {
    let t = Ctx::s(&cx.image);
    let ord = Ctx::s(&cx.ordinary);
    let images = Ctx::s(&cx.path("images"));
    for (what, p) in [
        ("image", cx.image.clone()),
        ("restic pack", cx.restic_pack.clone()),
        ("restic config", cx.restic_config.clone()),
        ("borg segment", cx.borg_segment.clone()),
    ] {
        let o = cx.attack(&["unlink", &Ctx::s(&p)]);
        cx.record(&format!("unlink: {what}"), &["EPERM"], o);
    }
    let o = cx.attack(&["unlinkat-dirfd", &images, "disk-1.mrimg"]);
    cx.record("unlinkat on a dirfd opened after protection", &["EPERM"], o);
    let o = cx.attack(&["uring-unlinkat", &t]);
    cx.record("io_uring unlinkat", &["EPERM"], o);
    let o = cx.attack(&["renameat2", &t, &format!("{t}.locked"), ""]);
    cx.record("rename to *.locked (same folder)", &["EPERM"], o);
    let o = cx.attack(&["renameat2", &t, &Ctx::s(&cx.path("other/disk-1.mrimg")), ""]);
    cx.record("rename out of the folder", &["EPERM"], o);
    let o = cx.attack(&["renameat2", &ord, &t, ""]);
    cx.record("rename an ordinary file over a backup", &["EPERM"], o);
    let o = cx.attack(&["renameat2", &t, &ord, "exchange"]);
    cx.record(
        "renameat2 RENAME_EXCHANGE with an ordinary file",
        &["EPERM"],
        o,
    );
    let o = cx.attack(&["renameat2", &t, &format!("{t}.x"), "whiteout"]);
    cx.record("renameat2 RENAME_WHITEOUT", &["EPERM"], o);
    let o = cx.attack(&["renameat2", &t, &format!("{t}.x"), "noreplace"]);
    cx.record("renameat2 RENAME_NOREPLACE", &["EPERM"], o);
    let o = cx.attack(&["uring-renameat", &t, &format!("{t}.locked")]);
    cx.record("io_uring renameat", &["EPERM"], o);
    let o = cx.attack(&[
        "renameat2",
        &Ctx::s(&cx.restic_pack),
        &Ctx::s(&cx.path("other/pack")),
        "",
    ]);
    cx.record("rename restic pack out of the repository", &["EPERM"], o);
    let o = cx.attack(&["link-then-write", &t, &Ctx::s(&cx.path("other/alias"))]);
    cx.record("hard link, then write through the link", &["EPERM"], o);
    let link = Ctx::s(&cx.outside.join("innocent-link"));
    let o = cx.attack(&["symlink-then-write", &t, &link]);
    cx.record(
        "symlink from an unprotected folder, write through it",
        &["EPERM"],
        o,
    );
}

fn metadata_and_copies(cx: &mut Ctx) {
    let t = Ctx::s(&cx.image);
    let ord = Ctx::s(&cx.ordinary);
    let o = cx.attack(&["chmod-then-write", &t]);
    cx.record("chmod, then write", &["EPERM"], o);
    let o = cx.attack(&["chown-then-write", &t]);
    cx.record("chown, then write", &["EPERM"], o);
    let o = cx.attack(&["utimes", &t]);
    cx.record("utimes (touch)", &["EPERM"], o);
    let o = cx.attack(&["setxattr", &t]);
    cx.record("setxattr", &["EPERM"], o);
    let o = cx.attack(&["removexattr", &t, "user.tag"]);
    cx.record("removexattr", &["EPERM"], o);
    let o = cx.attack(&["copy-file-range", &ord, &t]);
    cx.record("copy_file_range into a backup", &["EPERM"], o);
    let o = cx.attack(&["ficlone", &ord, &t]);
    cx.record("FICLONE into a backup (O_WRONLY)", &["EPERM"], o);
    let o = cx.attack(&["ficlone", &ord, &t, "rdonly"]);
    cx.record("FICLONE into a backup (O_RDONLY fd)", &["EBADF"], o);
    cx.record(
        "cp --reflink=auto onto a backup",
        &["EPERM"],
        cx.shell(&format!("cp --reflink=auto {ord} {t}")),
    );
    let o = cx.attack(&["handle-via-guard", &Ctx::s(&cx.sb.mnt), &t]);
    cx.record(
        "open_by_handle_at O_RDWR with a handle of the guard",
        &["EOPNOTSUPP", "EPERM", "ESTALE"],
        o,
    );
}

/// Wait (3 s at most) for the service to detach the mount the attacker made at `at` (the
/// topmost there), and say how it went.
fn detached(cx: &Ctx, at: &Path, mounted: &Output, logged_as: &str) -> String {
    let t0 = Instant::now();
    // Anything at `at` but the guard is the attacker's (the volume's own mount was detached
    // from this namespace when it was protected).
    let foreign = || {
        imageguard_volume::MountTable::read()
            .map(|t| {
                t.entries
                    .iter()
                    .any(|e| e.mount_point == at && e.fstype != "fuse.imageguard")
            })
            .unwrap_or(false)
    };
    while foreign() && t0.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let after = t0.elapsed();
    let logged = events(&cx.sb)
        .iter()
        .any(|e| e.id == 510 && e.message.contains(logged_as));
    if !mounted.status.success() {
        "mount refused".to_string()
    } else if foreign() {
        "still mounted after 3 s".to_string()
    } else {
        format!(
            "detached{} after {} ms",
            if logged { ", 510 logged" } else { "" },
            after.as_millis()
        )
    }
}

fn paths_mounts_and_users(cx: &mut Ctx) {
    let t = Ctx::s(&cx.image);
    let m = Ctx::s(&cx.sb.mnt);
    // A bind mount of the protected folder is the guard again.
    let bind = cx.outside.join("bind");
    std::fs::create_dir_all(&bind).unwrap();
    assert_ok(
        "bind mount",
        &sh(&format!("mount --bind {m}/images {}", bind.display())),
    );
    let o = cx.attack(&["open-write", &Ctx::s(&bind.join("disk-1.mrimg"))]);
    cx.record(
        "bind-mount the folder elsewhere, write there",
        &["EPERM"],
        o,
    );
    let o = cx.attack(&["unlink", &Ctx::s(&bind.join("disk-1.mrimg"))]);
    cx.record(
        "bind-mount the folder elsewhere, unlink there",
        &["EPERM"],
        o,
    );
    let _ = sh(&format!("umount {}", bind.display()));
    // Mounting the protected device a second time (root gets the same, writable, file system):
    // out of a FUSE guard's reach to prevent, so the service detaches it at once and logs 510.
    let second = cx.outside.join("second");
    std::fs::create_dir_all(&second).unwrap();
    let dev = cx.sb.loop_device.clone().expect("loop device");
    let mounted = sh(&format!("mount {dev} {}", second.display()));
    let observed = detached(cx, &second, &mounted, "mounted again");
    cx.record(
        "mount the protected block device a second time (limit)",
        &["detached, 510 logged*", "mount refused"],
        Outcome::Note(observed),
    );
    // A file system mounted on top of the guard would hide the backups (and take what backup
    // programs write); one mounted inside it, over a repository's data folder, would take the
    // new packs: each is detached at once and logged.
    for (what, at) in [
        (
            "tmpfs mounted on top of the protected volume",
            cx.sb.mnt.clone(),
        ),
        (
            "tmpfs mounted inside it, over restic's data folder",
            cx.path("restic-repo/data"),
        ),
    ] {
        let mounted = sh(&format!("mount -t tmpfs covering {}", at.display()));
        let observed = detached(cx, &at, &mounted, "on top of or inside");
        cx.record(
            what,
            &["detached, 510 logged*", "mount refused"],
            Outcome::Note(observed),
        );
    }
    // The guard moved away (`mount --move`, mount(2)'s MS_MOVE): the watchdog, woken by the
    // mount change, puts a fresh guard back at the mount point and logs 510. The kernel shield
    // refuses every MS_MOVE in the namespace the guards are mounted in (its hook cannot
    // resolve the source path).
    let moved = cx.outside.join("moved");
    std::fs::create_dir_all(&moved).unwrap();
    let guard_back = || {
        imageguard_volume::MountTable::read()
            .map(|t| {
                t.entries.iter().any(|e| {
                    e.mount_point == cx.sb.mnt
                        && e.fstype == imageguard_volume::backing::GUARD_FSTYPE
                })
            })
            .unwrap_or(false)
    };
    let mv = sh(&format!("mount --move {m} {}", moved.display()));
    let t0 = Instant::now();
    while !guard_back() && t0.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let after = t0.elapsed();
    let _ = sh(&format!("umount -l {}", moved.display()));
    let logged = events(&cx.sb)
        .iter()
        .any(|e| e.id == 510 && e.message.contains("moved away"));
    let observed = if !mv.status.success() {
        format!("move refused: {}", stderr(&mv).trim())
    } else if !guard_back() {
        "no guard at the mount point after 3 s".to_string()
    } else {
        format!(
            "guard back{} after {} ms",
            if logged { ", 510 logged" } else { "" },
            after.as_millis()
        )
    };
    let expected: &[&str] = if cx.shield {
        &["move refused*"]
    } else {
        &["guard back, 510 logged*"]
    };
    cx.record(
        "mount --move the guard elsewhere (limit without the shield)",
        expected,
        Outcome::Note(observed),
    );
    // Another mount namespace: unmounting the guard there shows an empty folder.
    let out = sh(&format!(
        "unshare -m --propagation private sh -c 'umount -l {m} && ls -A {m} | wc -l && \
         (echo x > {t}) 2>&1'"
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let entries = lines.next().unwrap_or("?").trim().to_string();
    let write = if text.contains("No such file") || text.contains("nonexistent") {
        "ENOENT"
    } else {
        "?"
    };
    // With the kernel shield, the unmount itself is refused.
    let err = stderr(&out).to_lowercase();
    let observed = if err.contains("umount")
        && (err.contains("not permitted") || err.contains("must be superuser"))
    {
        "umount refused".to_string()
    } else {
        format!("{entries} entries, write {write}")
    };
    cx.record(
        "unshare -m, umount -l the guard, look and write",
        &["0 entries, write ENOENT", "umount refused"],
        Outcome::Note(observed),
    );
    let world = Ctx::s(&cx.path("world/shared.mrimg"));
    cx.record(
        "non-root user, world-writable backup: write",
        &["EPERM"],
        cx.shell(&as_nobody(&format!("echo x >> {world}"))),
    );
    cx.record(
        "non-root user, world-writable backup: delete",
        &["EPERM"],
        cx.shell(&as_nobody(&format!("rm -f {world}"))),
    );
    cx.record(
        "non-root user: create a new file (allowed)",
        &["succeeded"],
        cx.shell(&as_nobody(&format!("echo x > {m}/world/new-by-nobody.txt"))),
    );
}

fn identities(cx: &mut Ctx) {
    let t = Ctx::s(&cx.image);
    let scratch = Ctx::s(&cx.path("scratch/control.mrimg"));
    let truncate = certified_copy(&cx.sb, "/usr/bin/truncate", "cert-truncate", false);
    let tr = Ctx::s(&truncate);
    let run = |cmd: &mut Command| outcome_of_tool(&output_fresh(clean(cmd)));
    let o = run(Command::new(&truncate).args(["-s", "100", &scratch]));
    cx.record(
        "control: certified truncate on a scratch backup",
        &["succeeded"],
        o,
    );
    for var in ["LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH"] {
        let value = if var == "LD_LIBRARY_PATH" {
            "/tmp"
        } else {
            "libm.so.6"
        };
        // Set after `clean`, which removes the loader variables cargo's environment has.
        let o = outcome_of_tool(&output_fresh(
            clean(&mut Command::new(&truncate))
                .env(var, value)
                .args(["-s0", &t]),
        ));
        cx.record(&format!("{var} into a certified binary"), &["EPERM"], o);
    }
    let copy = cx.outside.join("truncate-copy");
    std::fs::copy(&truncate, &copy).unwrap();
    let o = run(Command::new(&copy).args(["-s0", &t]));
    cx.record("copy of a certified binary, run the copy", &["EPERM"], o);
    let o = outcome_of_tool(
        &clean(Command::new("strace").args(["-f", "-o", "/dev/null", &tr, "-s0", &t]))
            .output()
            .expect("strace"),
    );
    cx.record(
        "certified binary started under ptrace (strace)",
        &["EPERM"],
        o,
    );
    // Attach to a running certified process (a certified shell, forced) before it writes.
    let shell = certified_copy(&cx.sb, "/bin/dash", "cert-sh", true);
    let o = run(Command::new(&shell).args(["-c", &format!("echo ok >> {scratch}")]));
    cx.record(
        "control: certified shell on a scratch backup",
        &["succeeded"],
        o,
    );
    // Key material is only added to, even by a certified program (issue 10).
    let config = Ctx::s(&cx.restic_config);
    let o = run(Command::new(&truncate).args(["-s0", &config]));
    cx.record(
        "certified truncate of restic's config (key material)",
        &["EPERM"],
        o,
    );
    let keys = Ctx::s(&cx.path("restic-repo/keys"));
    let o = run(Command::new(&shell).args(["-c", &format!("rm {keys}/*")]));
    cx.record("certified shell: rm restic's keys", &["EPERM"], o);
    let borg_config = Ctx::s(&cx.path("borg-repo/config"));
    let o = run(Command::new(&shell).args([
        "-c",
        &format!("echo x > {borg_config}.new && mv {borg_config}.new {borg_config}"),
    ]));
    cx.record(
        "certified shell: a file renamed over borg's config",
        &["EPERM"],
        o,
    );
    let mut victim =
        clean(Command::new(&shell).args(["-c", &format!("sleep 1.5; echo x >> {scratch}")]))
            .stderr(Stdio::piped())
            .spawn()
            .expect("certified shell");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut tracer = Command::new("strace")
        .args(["-o", "/dev/null", "-p", &victim.id().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace");
    let status = victim.wait().unwrap();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(victim.stderr.as_mut().unwrap(), &mut err);
    let _ = tracer.kill();
    let traced = tracer.wait_with_output().expect("strace");
    // With the kernel shield the attach itself is refused (and the untraced certified shell's
    // append goes through, as it may).
    let attach_refused =
        String::from_utf8_lossy(&traced.stderr).contains("Operation not permitted");
    let o = if attach_refused {
        Outcome::Note("attach refused".into())
    } else if status.success() {
        Outcome::Succeeded
    } else if err.contains("Operation not permitted") || err.contains("ermission") {
        Outcome::Errno(libc::EPERM)
    } else {
        Outcome::Failed(err.lines().next().unwrap_or("").to_string())
    };
    cx.record(
        "ptrace attach to a running certified process",
        &["EPERM", "attach refused"],
        o,
    );
    // Replace the certified binary's contents; it is no longer certified.
    std::fs::copy("/usr/bin/dd", &truncate).unwrap();
    let o = run(Command::new(&truncate).args([
        &format!("of={t}"),
        "if=/dev/zero",
        "bs=1",
        "count=1",
        "conv=notrunc",
        "status=none",
    ]));
    cx.record("certified binary replaced on disk, then run", &["EPERM"], o);
    let replaced = events(&cx.sb).iter().any(|e| {
        e.id == 320 && e.exe.as_deref() == Some(&*tr) && e.message.contains("changed on disk")
    });
    cx.record(
        "  ... and the denial names the changed binary",
        &["logged"],
        Outcome::Note(if replaced { "logged" } else { "not logged" }.into()),
    );
}

/// Through what automatic protection trusts: a definition file edited to have the service guard
/// the system itself (a denial of service) or a network share. Nothing is protected for it.
fn definitions(cx: &mut Ctx) {
    // The verification file (`imageguard verify`) is certified programs' and the service's.
    let verification = cx.path(imageguard_policy::classify::VERIFICATION_FILE);
    let o = cx.attack(&["open-creat-trunc", &Ctx::s(&verification)]);
    cx.record("create the verification file (310)", &["EPERM"], o);
    let o = cx.shell(&format!(
        "ln -s /etc/passwd '{0}' || mv '{1}' '{0}'",
        verification.display(),
        cx.ordinary.display()
    ));
    cx.record(
        "the verification file as a symlink, or renamed into place",
        &["EPERM"],
        o,
    );
    let etc = cx.sb.path().join("etc/borgmatic.d");
    std::fs::create_dir_all(&etc).unwrap();
    // A definition naming a folder with backups in it on a drive of its own is followed and
    // the drive protected: the control, and the barrier after each attack (the service follows
    // definition files in the order they change; how soon depends on the machine, an emulated
    // one above all). Each is a drive of its own so that it adds a volume wherever the suite
    // runs (a folder on the system volume would be guarded alone, one in memory not at all).
    let protect_new = |cx: &mut Ctx, name: &str, already: usize| -> usize {
        let drives = cx.sb.path().join("drives");
        std::fs::create_dir_all(&drives).unwrap();
        let drive = Drive::format(&drives.join(format!("{name}.img")), &drives.join(name));
        drive.plug_in();
        let control = drive.mount_point.join("backups");
        cx.drives.push(drive);
        std::fs::create_dir_all(&control).unwrap();
        std::fs::write(control.join("a.mrimg"), b"x").unwrap();
        std::fs::write(
            etc.join(format!("{name}.yaml")),
            format!("repositories:\n  - {}\n", control.display()),
        )
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let now = cx.volume_count();
            if now > already || std::time::Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let first = cx.volume_count();
    let now = protect_new(cx, "control-backups", first);
    cx.record(
        "control: a new definition's destination is protected",
        &["1 more protected"],
        Outcome::Note(format!("{} more protected", now.saturating_sub(first))),
    );
    let mut before = now;
    for (i, (what, repos)) in [
        ("definition naming / as a destination", "/"),
        ("definition naming /etc as a destination", "/etc"),
        ("definition naming /var as a destination", "/var"),
        (
            "definition naming a remote repository",
            "ssh://evil@host/./repo",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(
            etc.join("evil.yaml"),
            format!("repositories:\n  - {repos}\n"),
        )
        .unwrap();
        // Then a barrier definition: once its folder is protected, the evil one was read.
        let after = protect_new(cx, &format!("barrier-{i}"), before);
        cx.record(
            what,
            &["nothing protected"],
            Outcome::Note(if after == before + 1 {
                "nothing protected".into()
            } else {
                format!(
                    "{} more protected besides the barrier",
                    after as i64 - before as i64 - 1
                )
            }),
        );
        before = after;
    }
    let _ = std::fs::remove_file(etc.join("evil.yaml"));
    // The drives go back: their definitions removed, each unprotected, unmounted, detached.
    for drive in std::mem::take(&mut cx.drives) {
        let name = drive
            .mount_point
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let _ = std::fs::remove_file(etc.join(format!("{name}.yaml")));
        assert_ok(
            "unprotect a definitions drive",
            &cx.ig(&["unprotect", &Ctx::s(&drive.mount_point)]),
        );
    }
}

fn folders_and_storms(cx: &mut Ctx) {
    let m = Ctx::s(&cx.sb.mnt);
    let t = Ctx::s(&cx.image);
    cx.record(
        "mv the folder holding backups",
        &["EPERM"],
        cx.shell(&format!("mv {m}/images {m}/moved")),
    );
    // The repositories' own folder tree: a grandparent of every pack.
    cx.record(
        "mv a folder whose sub-folders hold backups",
        &["EPERM"],
        cx.shell(&format!("mv {m}/restic-repo/data {m}/data-moved")),
    );
    cx.record(
        "mv a grandparent folder of an image",
        &["EPERM"],
        cx.shell(&format!("mv {m}/top {m}/top-moved")),
    );
    cx.record(
        "mv the borg repository folder",
        &["EPERM"],
        cx.shell(&format!("mv {m}/borg-repo {m}/borg-moved")),
    );
    let o = cx.attack(&["rmdir", &Ctx::s(&cx.path("restic-repo/data"))]);
    cx.record("rmdir a repository folder", &["EPERM", "ENOTEMPTY"], o);
    cx.record(
        "rm -rf the folder",
        &["EPERM"],
        cx.shell(&format!("rm -rf {m}/images")),
    );
    // Encryption-style rewrite: read, write an encrypted copy, delete the original.
    cx.record(
        "encrypt: read, write new file, delete original",
        &["EPERM"],
        cx.shell(&format!(
            "python3 -c \"import os; d=open('{t}','rb').read(); open('{t}.enc','wb').write(bytes(b^0x5a for b in d[:4096])); os.unlink('{t}')\""
        )),
    );
    // Many processes over 10 000 backups at once: every overwrite and delete refused.
    let storm = cx.path("storm");
    let script = format!(
        "import os,sys\nok=0;denied=0\nnames=sorted(os.listdir('{0}'))[int(sys.argv[1])::4]\n\
         for n in names:\n p=os.path.join('{0}',n)\n for op in ('w','d'):\n  try:\n   \
         (os.close(os.open(p,os.O_WRONLY|os.O_TRUNC)) if op=='w' else os.unlink(p)); ok+=1\n  \
         except PermissionError: denied+=1\nprint(ok,denied)\n",
        storm.display()
    );
    let t0 = Instant::now();
    let kids: Vec<_> = (0..4)
        .map(|i| {
            clean(Command::new("python3").args(["-c", &script, &i.to_string()]))
                .stdout(Stdio::piped())
                .spawn()
                .expect("python")
        })
        .collect();
    let (mut ok, mut denied) = (0u64, 0u64);
    for k in kids {
        let o = k.wait_with_output().unwrap();
        let s = String::from_utf8_lossy(&o.stdout);
        let mut it = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
        ok += it.next().unwrap_or(0);
        denied += it.next().unwrap_or(0);
    }
    cx.record(
        "storm: 4 processes overwrite+delete 10 000 backups",
        &["0 succeeded, 20000 EPERM*"],
        Outcome::Note(format!(
            "{ok} succeeded, {denied} EPERM in {:.1} s",
            t0.elapsed().as_secs_f64()
        )),
    );
    cx.record(
        "rm -rf of the volume root",
        &["EPERM"],
        cx.shell(&format!("rm -rf {m}/*")),
    );
}
