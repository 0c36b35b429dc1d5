//! The decision: may this caller perform this operation on this entry?

use crate::caller::CallerFacts;
use crate::classify::Class;
use crate::holds::{hold_for, Circumstances, Held};
use crate::operation::Operation;

/// Outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse with EPERM and log event 320.
    Deny,
    /// A certified caller held back (EPERM and 320 too), and why.
    Held(Held),
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow)
    }
}

/// Decide one operation. Ordinary entries are open to everyone (the kernel's own permission
/// checks still apply); backup entries may be modified only by certified callers, and by them
/// only as far as nothing holds the entry (see [`crate::holds`]). Where the admin turned
/// protection off on a locked volume, everyone is treated as certified: what holds a backup
/// (the retention lock, key material) still refuses.
pub fn decide(caller: &CallerFacts, op: Operation, target: &Class, now: &Circumstances) -> Verdict {
    match target {
        Class::Ordinary => Verdict::Allow,
        Class::Backup(_) if caller.is_certified() || now.protection_off => {
            match hold_for(op, target, now, caller.is_certified()) {
                Some(h) => Verdict::Held(h),
                None => Verdict::Allow,
            }
        }
        Class::Backup(_) => Verdict::Deny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Untrusted;
    use crate::classify::BackupReason;

    const ALL_OPS: &[Operation] = &Operation::ALL;

    #[test]
    fn every_untrusted_reason_is_denied_every_operation_on_backups() {
        let reasons = [
            Untrusted::NotCertified,
            Untrusted::BinaryChanged,
            Untrusted::Traced(7),
            Untrusted::Injected("LD_PRELOAD".into()),
            Untrusted::Unidentified,
        ];
        let backup = Class::Backup(BackupReason::Pattern("*.mrimg".into()));
        for why in reasons {
            let caller = CallerFacts::untrusted(42, "/usr/bin/bash", why.clone());
            for &op in ALL_OPS {
                assert_eq!(
                    decide(&caller, op, &backup, &Circumstances::default()),
                    Verdict::Deny,
                    "{why:?} {op:?}"
                );
                assert_eq!(
                    decide(&caller, op, &Class::Ordinary, &Circumstances::default()),
                    Verdict::Allow,
                    "{why:?} {op:?}"
                );
            }
        }
    }

    #[test]
    fn with_protection_off_on_a_locked_volume_only_holds_refuse() {
        use crate::holds::{hold, LockedAge};
        use crate::RepoKind;
        use std::time::Duration;
        let anyone = CallerFacts::untrusted(9, "/usr/bin/rm", Untrusted::NotCertified);
        let image = Class::Backup(BackupReason::Pattern("*.mrimg".into()));
        let key = Class::Backup(BackupReason::KeyMaterial(RepoKind::Restic));
        let aged = |days: u64| Circumstances {
            protection_off: true,
            lock: Some(LockedAge {
                lock_days: 14,
                age: Some(Duration::from_secs(days * 86_400)),
            }),
            ..Circumstances::default()
        };
        for &op in ALL_OPS {
            let young = decide(&anyone, op, &image, &aged(2));
            let old = decide(&anyone, op, &image, &aged(20));
            assert_eq!(old, Verdict::Allow, "{op:?} on an old backup");
            let held = matches!(young, Verdict::Held(_));
            assert_eq!(
                held,
                hold(op, &image, &aged(2)).is_some() || op == Operation::OpenAppend,
                "{op:?} on a young backup"
            );
            // Key material stays only added to, whatever its age.
            assert_eq!(
                decide(&anyone, op, &key, &aged(400)).is_allowed(),
                hold(op, &key, &aged(400)).is_none(),
                "{op:?} on key material"
            );
        }
        assert!(matches!(
            decide(&anyone, Operation::Delete, &image, &aged(2)),
            Verdict::Held(_)
        ));
        assert!(matches!(
            decide(&anyone, Operation::Delete, &key, &aged(400)),
            Verdict::Held(_)
        ));
        // Protection on: the same caller is refused everything, old or young.
        let on = Circumstances {
            protection_off: false,
            ..aged(20)
        };
        assert_eq!(
            decide(&anyone, Operation::Delete, &image, &on),
            Verdict::Deny
        );
    }

    #[test]
    fn only_certified_programs_create_the_verification_file() {
        let v = Class::Backup(BackupReason::Verification);
        let op = Operation::CreateVerification;
        let anyone = CallerFacts::untrusted(9, "/usr/bin/touch", Untrusted::NotCertified);
        let certified = CallerFacts::certified(1, "/usr/bin/restic", "/usr/bin/restic");
        assert_eq!(
            decide(&anyone, op, &v, &Circumstances::default()),
            Verdict::Deny
        );
        assert_eq!(
            decide(&certified, op, &v, &Circumstances::default()),
            Verdict::Allow
        );
        // Protection off: nothing verifies (the verification fails, as it should).
        let off = Circumstances {
            protection_off: true,
            ..Circumstances::default()
        };
        assert_eq!(decide(&anyone, op, &v, &off), Verdict::Allow);
    }

    #[test]
    fn certified_callers_may_do_everything() {
        let caller = CallerFacts::certified(1, "/usr/bin/restic", "/usr/bin/restic");
        let backup = Class::Backup(BackupReason::Destination);
        for &op in ALL_OPS {
            assert!(decide(&caller, op, &backup, &Circumstances::default()).is_allowed());
        }
    }
}
