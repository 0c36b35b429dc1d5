//! The decision compiled into a table, for an enforcement point that cannot call [`decide`]
//! (the kernel backend's programs, which look a verdict up in a map): every combination of
//! what such a point knows about one operation, the caller (certified or not), the operation,
//! the entry's class, and the circumstances (a key window open, the retention lock's verdict
//! on its age, protection off), with the verdict [`decide`] gives for it.
//!
//! The table is made by calling [`decide`] for each combination, so the rule exists once: the
//! decision depends on nothing else (a pattern's text, an age in days, a caller's reason for
//! not being trusted only change what the event says), which the tests here prove by
//! comparing the table with [`decide`] over varied inputs of each code.

use std::time::Duration;

use crate::caller::{CallerFacts, Untrusted};
use crate::classify::{BackupReason, Class, RepoKind};
use crate::decide::{decide, Verdict};
use crate::holds::{Circumstances, Held, LockedAge};
use crate::operation::Operation;

/// An entry's class as a number (its reason, and the repository kind where it has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ClassCode {
    Ordinary = 0,
    Pattern = 1,
    ResticRepository = 2,
    BorgRepository = 3,
    ResticBookkeeping = 4,
    BorgBookkeeping = 5,
    ResticKeyMaterial = 6,
    BorgKeyMaterial = 7,
    Verification = 8,
    ResticUncommitted = 9,
    BorgUncommitted = 10,
    Destination = 11,
    SameInodeAsBackup = 12,
    ContainsBackups = 13,
}

impl ClassCode {
    /// Every code, in order.
    pub const ALL: [ClassCode; 14] = [
        ClassCode::Ordinary,
        ClassCode::Pattern,
        ClassCode::ResticRepository,
        ClassCode::BorgRepository,
        ClassCode::ResticBookkeeping,
        ClassCode::BorgBookkeeping,
        ClassCode::ResticKeyMaterial,
        ClassCode::BorgKeyMaterial,
        ClassCode::Verification,
        ClassCode::ResticUncommitted,
        ClassCode::BorgUncommitted,
        ClassCode::Destination,
        ClassCode::SameInodeAsBackup,
        ClassCode::ContainsBackups,
    ];

    pub fn of(class: &Class) -> ClassCode {
        use BackupReason as R;
        use RepoKind::{Borg, Restic};
        let Class::Backup(reason) = class else {
            return ClassCode::Ordinary;
        };
        match reason {
            R::Pattern(_) => ClassCode::Pattern,
            R::Repository(Restic) => ClassCode::ResticRepository,
            R::Repository(Borg) => ClassCode::BorgRepository,
            R::Bookkeeping(Restic) => ClassCode::ResticBookkeeping,
            R::Bookkeeping(Borg) => ClassCode::BorgBookkeeping,
            R::KeyMaterial(Restic) => ClassCode::ResticKeyMaterial,
            R::KeyMaterial(Borg) => ClassCode::BorgKeyMaterial,
            R::Verification => ClassCode::Verification,
            R::Uncommitted(Restic) => ClassCode::ResticUncommitted,
            R::Uncommitted(Borg) => ClassCode::BorgUncommitted,
            R::Destination => ClassCode::Destination,
            R::SameInodeAsBackup => ClassCode::SameInodeAsBackup,
            R::ContainsBackups => ClassCode::ContainsBackups,
        }
    }

    /// A class of this code (a pattern's text is any).
    pub fn class(self, pattern: &str) -> Class {
        use BackupReason as R;
        use RepoKind::{Borg, Restic};
        let reason = match self {
            ClassCode::Ordinary => return Class::Ordinary,
            ClassCode::Pattern => R::Pattern(pattern.to_string()),
            ClassCode::ResticRepository => R::Repository(Restic),
            ClassCode::BorgRepository => R::Repository(Borg),
            ClassCode::ResticBookkeeping => R::Bookkeeping(Restic),
            ClassCode::BorgBookkeeping => R::Bookkeeping(Borg),
            ClassCode::ResticKeyMaterial => R::KeyMaterial(Restic),
            ClassCode::BorgKeyMaterial => R::KeyMaterial(Borg),
            ClassCode::Verification => R::Verification,
            ClassCode::ResticUncommitted => R::Uncommitted(Restic),
            ClassCode::BorgUncommitted => R::Uncommitted(Borg),
            ClassCode::Destination => R::Destination,
            ClassCode::SameInodeAsBackup => R::SameInodeAsBackup,
            ClassCode::ContainsBackups => R::ContainsBackups,
        };
        Class::Backup(reason)
    }
}

/// What the retention lock says of an entry: no lock applies, or its age against the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LockCode {
    None = 0,
    /// Younger than the lock (or of unknown age).
    Young = 1,
    /// As old as the lock or older.
    Old = 2,
}

impl LockCode {
    pub const ALL: [LockCode; 3] = [LockCode::None, LockCode::Young, LockCode::Old];

    pub fn of(lock: Option<LockedAge>) -> LockCode {
        match lock {
            None => LockCode::None,
            Some(l) if l.young() => LockCode::Young,
            Some(_) => LockCode::Old,
        }
    }
}

/// One combination an enforcement point looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Case {
    pub certified: bool,
    pub op: Operation,
    pub class: ClassCode,
    pub key_window_open: bool,
    pub lock: LockCode,
    pub protection_off: bool,
}

/// A verdict as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum VerdictCode {
    Allow = 0,
    Deny = 1,
    /// Held: key material, only added to.
    HeldKeyMaterial = 2,
    /// Held: younger than the retention lock.
    HeldYoung = 3,
}

impl VerdictCode {
    pub const ALL: [VerdictCode; 4] = [
        VerdictCode::Allow,
        VerdictCode::Deny,
        VerdictCode::HeldKeyMaterial,
        VerdictCode::HeldYoung,
    ];

    pub fn of(v: &Verdict) -> VerdictCode {
        match v {
            Verdict::Allow => VerdictCode::Allow,
            Verdict::Deny => VerdictCode::Deny,
            Verdict::Held(Held::KeyMaterial(_)) => VerdictCode::HeldKeyMaterial,
            Verdict::Held(Held::Young { .. }) => VerdictCode::HeldYoung,
        }
    }

    pub fn is_allowed(self) -> bool {
        self == VerdictCode::Allow
    }
}

/// How many cases there are: the table's length.
pub const CASES: usize =
    2 * Operation::ALL.len() * ClassCode::ALL.len() * 2 * LockCode::ALL.len() * 2;

impl Case {
    /// Its place in the table: the fields as digits, `certified` the most significant.
    pub fn index(&self) -> usize {
        let mut i = usize::from(self.certified);
        i = i * Operation::ALL.len() + usize::from(self.op.code());
        i = i * ClassCode::ALL.len() + self.class as usize;
        i = i * 2 + usize::from(self.key_window_open);
        i = i * LockCode::ALL.len() + self.lock as usize;
        i * 2 + usize::from(self.protection_off)
    }

    /// Every case, in table order.
    pub fn all() -> impl Iterator<Item = Case> {
        [false, true].into_iter().flat_map(|certified| {
            Operation::ALL.into_iter().flat_map(move |op| {
                ClassCode::ALL.into_iter().flat_map(move |class| {
                    [false, true].into_iter().flat_map(move |key_window_open| {
                        LockCode::ALL.into_iter().flat_map(move |lock| {
                            [false, true].into_iter().map(move |protection_off| Case {
                                certified,
                                op,
                                class,
                                key_window_open,
                                lock,
                                protection_off,
                            })
                        })
                    })
                })
            })
        })
    }

    /// [`decide`] on this case, with `caller`, `pattern` and `age` standing for what the code
    /// leaves open (a certified caller's entry or an uncertified one's reason, a pattern's
    /// text, an age on the right side of the lock).
    fn decide_with(
        &self,
        caller: &CallerFacts,
        pattern: &str,
        lock_days: u32,
        age: Option<Duration>,
    ) -> Verdict {
        let lock = match self.lock {
            LockCode::None => None,
            LockCode::Young => Some(LockedAge {
                lock_days,
                age: age.filter(|a| *a < Duration::from_secs(u64::from(lock_days) * 86_400)),
            }),
            LockCode::Old => Some(LockedAge {
                lock_days,
                age: Some(
                    age.filter(|a| *a >= Duration::from_secs(u64::from(lock_days) * 86_400))
                        .unwrap_or(Duration::from_secs(u64::from(lock_days) * 86_400)),
                ),
            }),
        };
        let now = Circumstances {
            key_window_open: self.key_window_open,
            lock,
            protection_off: self.protection_off,
        };
        decide(caller, self.op, &self.class.class(pattern), &now)
    }

    fn caller(&self) -> CallerFacts {
        if self.certified {
            CallerFacts::certified(1, "/usr/bin/restic", "/usr/bin/restic")
        } else {
            CallerFacts::untrusted(1, "/usr/bin/rm", Untrusted::NotCertified)
        }
    }
}

/// The compiled decision: one verdict per [`Case`], at [`Case::index`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictTable(Vec<VerdictCode>);

impl VerdictTable {
    /// [`decide`] for every case.
    pub fn compile() -> VerdictTable {
        let mut table = vec![VerdictCode::Deny; CASES];
        for case in Case::all() {
            table[case.index()] =
                VerdictCode::of(&case.decide_with(&case.caller(), "*.mrimg", 30, None));
        }
        VerdictTable(table)
    }

    pub fn lookup(&self, case: &Case) -> VerdictCode {
        self.0[case.index()]
    }

    /// The verdicts as bytes, in table order (what a kernel map holds).
    pub fn bytes(&self) -> Vec<u8> {
        self.0.iter().map(|v| *v as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel backend looks up only marked entries: an unmarked one is ordinary, which it
    /// may let through unasked only because the table allows everything to an ordinary entry.
    #[test]
    fn an_ordinary_entry_is_allowed_everything() {
        let table = VerdictTable::compile();
        for case in Case::all().filter(|c| c.class == ClassCode::Ordinary) {
            assert_eq!(table.lookup(&case), VerdictCode::Allow, "{case:?}");
        }
    }

    #[test]
    fn every_case_has_its_own_place() {
        let mut seen = vec![false; CASES];
        for case in Case::all() {
            assert!(!seen[case.index()], "{case:?} shares its place");
            seen[case.index()] = true;
        }
        assert!(seen.iter().all(|s| *s), "every place is a case's");
    }

    #[test]
    fn codes_round_trip() {
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(usize::from(op.code()), i, "{op}");
        }
        for (i, c) in ClassCode::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            assert_eq!(ClassCode::of(&c.class("*.tib")), *c);
        }
    }

    /// The table is the decision: for each case, whatever the code leaves open (the caller's
    /// reason for not being trusted, a pattern's text, the lock's length and the age on its
    /// side of it) gives the verdict the table holds.
    #[test]
    fn the_table_is_what_decide_says_whatever_the_codes_leave_open() {
        let table = VerdictTable::compile();
        let uncertified = [
            Untrusted::NotCertified,
            Untrusted::BinaryChanged,
            Untrusted::Traced(9),
            Untrusted::Injected("LD_PRELOAD".into()),
            Untrusted::Unidentified,
        ];
        let ages = [
            None,
            Some(0),
            Some(1),
            Some(29),
            Some(30),
            Some(31),
            Some(400),
        ];
        let mut compared = 0;
        for case in Case::all() {
            let callers: Vec<CallerFacts> = if case.certified {
                vec![
                    CallerFacts::certified(4, "/usr/bin/borg", "/usr/bin/borg"),
                    CallerFacts::certified(5, "/usr/bin/python3", "/usr/bin/rsnapshot"),
                ]
            } else {
                uncertified
                    .iter()
                    .map(|u| CallerFacts::untrusted(6, "/tmp/evil", u.clone()))
                    .collect()
            };
            for caller in &callers {
                for pattern in ["*.mrimg", "*.tib"] {
                    for lock_days in [1, 30, 3650] {
                        for days in ages {
                            let age = days.map(|d| Duration::from_secs(d * 86_400 + 5));
                            let v = case.decide_with(caller, pattern, lock_days, age);
                            // (an age on the wrong side of the case's lock is not this case)
                            let lock = match case.lock {
                                LockCode::None => None,
                                _ => Some(LockedAge { lock_days, age }),
                            };
                            if case.lock != LockCode::None && LockCode::of(lock) != case.lock {
                                continue;
                            }
                            assert_eq!(
                                VerdictCode::of(&v),
                                table.lookup(&case),
                                "{case:?}, {caller:?}, {pattern}, {lock_days}-day lock, age {days:?}"
                            );
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert!(compared > CASES * 10, "{compared} comparisons");
    }

    #[test]
    fn the_table_holds_what_the_policy_is_known_for() {
        let t = VerdictTable::compile();
        let case = |certified, op, class, lock| Case {
            certified,
            op,
            class,
            key_window_open: false,
            lock,
            protection_off: false,
        };
        use ClassCode as C;
        use LockCode as L;
        use Operation as O;
        use VerdictCode as V;
        assert_eq!(
            t.lookup(&case(false, O::Delete, C::Pattern, L::None)),
            V::Deny
        );
        assert_eq!(
            t.lookup(&case(true, O::Delete, C::Pattern, L::None)),
            V::Allow
        );
        assert_eq!(
            t.lookup(&case(false, O::Delete, C::Ordinary, L::None)),
            V::Allow
        );
        assert_eq!(
            t.lookup(&case(true, O::Delete, C::Pattern, L::Young)),
            V::HeldYoung
        );
        assert_eq!(
            t.lookup(&case(true, O::Delete, C::Pattern, L::Old)),
            V::Allow
        );
        assert_eq!(
            t.lookup(&case(true, O::OpenWrite, C::BorgKeyMaterial, L::None)),
            V::HeldKeyMaterial
        );
        assert_eq!(
            t.lookup(&case(true, O::Delete, C::BorgUncommitted, L::Young)),
            V::Allow
        );
        assert_eq!(t.bytes().len(), CASES);
    }
}
