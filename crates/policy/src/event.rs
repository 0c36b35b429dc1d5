//! The event catalogue: the eleven event IDs of the reference product, their severities and
//! message texts, adapted to Linux names (a process is its executable path and pid; a volume is
//! its device, file-system UUID where known, and mount point).

use serde::{Deserialize, Serialize};

use crate::operation::Operation;

/// Event severity, as in the reference product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Informational,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// syslog/journal PRIORITY value.
    pub fn syslog_priority(self) -> u8 {
        match self {
            Severity::Informational => 6,
            Severity::Warning => 4,
            Severity::Error => 3,
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "informational" | "info" => Some(Severity::Informational),
            "warning" | "warn" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

/// The event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    ServiceStarted,
    GuardStartedByService,
    ServiceStopped,
    VolumeProtected,
    BlockVerificationFileAccess,
    BlockedFileAccess,
    UserProtectedVolume,
    UserDisabledVolume,
    ErrorBadEvent,
    ErrorProtectingVolume,
    ErrorUnprotectingVolume,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::ServiceStarted,
        EventKind::GuardStartedByService,
        EventKind::ServiceStopped,
        EventKind::VolumeProtected,
        EventKind::BlockVerificationFileAccess,
        EventKind::BlockedFileAccess,
        EventKind::UserProtectedVolume,
        EventKind::UserDisabledVolume,
        EventKind::ErrorBadEvent,
        EventKind::ErrorProtectingVolume,
        EventKind::ErrorUnprotectingVolume,
    ];

    pub fn id(self) -> u32 {
        match self {
            EventKind::ServiceStarted => 100,
            EventKind::GuardStartedByService => 110,
            EventKind::ServiceStopped => 200,
            EventKind::VolumeProtected => 300,
            EventKind::BlockVerificationFileAccess => 310,
            EventKind::BlockedFileAccess => 320,
            EventKind::UserProtectedVolume => 330,
            EventKind::UserDisabledVolume => 340,
            EventKind::ErrorBadEvent => 500,
            EventKind::ErrorProtectingVolume => 510,
            EventKind::ErrorUnprotectingVolume => 520,
        }
    }

    pub fn from_id(id: u32) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.id() == id)
    }

    /// The reference product's symbolic name, kept so operators can map events one to one.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::ServiceStarted => "EVT_MIG_SERVICE_STARTED",
            EventKind::GuardStartedByService => "EVT_MIG_DRIVER_STARTED_BY_SERVICE",
            EventKind::ServiceStopped => "EVT_MIG_SERVICE_STOPPED",
            EventKind::VolumeProtected => "EVT_MIG_VOLUME_PROTECTED",
            EventKind::BlockVerificationFileAccess => "EVT_MIG_BLOCK_VERIFICATION_FILE_ACCESS",
            EventKind::BlockedFileAccess => "EVT_MIG_BLOCKED_FILE_ACCESS",
            EventKind::UserProtectedVolume => "EVT_MIG_USER_PROTECTED_VOLUME",
            EventKind::UserDisabledVolume => "EVT_MIG_USER_DISABLED_VOLUME",
            EventKind::ErrorBadEvent => "EVT_MIG_ERROR_BAD_EVENT",
            EventKind::ErrorProtectingVolume => "EVT_MIG_ERROR_PROTECTING_VOLUME",
            EventKind::ErrorUnprotectingVolume => "EVT_MIG_ERROR_UNPROTECTING_VOLUME",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            EventKind::BlockedFileAccess => Severity::Warning,
            EventKind::ErrorBadEvent
            | EventKind::ErrorProtectingVolume
            | EventKind::ErrorUnprotectingVolume => Severity::Error,
            _ => Severity::Informational,
        }
    }

    /// The systemd journal MESSAGE_ID of this event type (128-bit, stable).
    pub fn journal_message_id(self) -> String {
        format!("6d1f0c3ab2e94c7f8a5e21b4c9d7{:04x}", self.id())
    }
}

/// A process as events name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessRef {
    pub exe: String,
    pub pid: u32,
}

/// A volume as events name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VolumeRef {
    pub device: String,
    pub uuid: Option<String>,
    pub mount_point: String,
}

impl std::fmt::Display for VolumeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.device)?;
        if let Some(u) = &self.uuid {
            write!(f, " UUID={u}")?;
        }
        write!(f, " at {}", self.mount_point)
    }
}

/// One event, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub process: Option<ProcessRef>,
    pub volume: Option<VolumeRef>,
    pub file: Option<String>,
    pub operation: Option<Operation>,
    pub error_code: Option<i32>,
    /// Extra context appended to the text (why a caller was untrusted, an error's wording).
    pub detail: Option<String>,
}

impl Event {
    pub fn new(kind: EventKind) -> Event {
        Event {
            kind,
            process: None,
            volume: None,
            file: None,
            operation: None,
            error_code: None,
            detail: None,
        }
    }

    pub fn with_volume(mut self, v: VolumeRef) -> Event {
        self.volume = Some(v);
        self
    }

    pub fn with_process(mut self, exe: impl Into<String>, pid: u32) -> Event {
        self.process = Some(ProcessRef {
            exe: exe.into(),
            pid,
        });
        self
    }

    pub fn with_file(mut self, f: impl Into<String>) -> Event {
        self.file = Some(f.into());
        self
    }

    pub fn with_operation(mut self, op: Operation) -> Event {
        self.operation = Some(op);
        self
    }

    pub fn with_error(mut self, code: i32) -> Event {
        self.error_code = Some(code);
        self
    }

    pub fn with_detail(mut self, d: impl Into<String>) -> Event {
        self.detail = Some(d.into());
        self
    }

    /// The event text, following the reference product's wording.
    pub fn message(&self) -> String {
        let process = match &self.process {
            Some(p) => format!("{} pid {}", p.exe, p.pid),
            None => "unknown".to_string(),
        };
        let volume = match &self.volume {
            Some(v) => v.to_string(),
            None => "unknown".to_string(),
        };
        let code = self.error_code.unwrap_or(0);
        let mut text = match self.kind {
            EventKind::ServiceStarted => "imageguard service started".to_string(),
            EventKind::GuardStartedByService => match &self.volume {
                Some(v) => format!("imageguard guard started by service on volume ({v})"),
                None => "imageguard guard started by service".to_string(),
            },
            EventKind::ServiceStopped => "imageguard service stopped".to_string(),
            EventKind::VolumeProtected => format!("Volume ({volume}) is protected"),
            EventKind::BlockVerificationFileAccess => format!(
                "Blocking process ({process}) creating verification file as process is not imageguard certified"
            ),
            EventKind::BlockedFileAccess => format!(
                "Blocked unauthorised process ({process}) accessing file ({})",
                self.file.as_deref().unwrap_or("unknown")
            ),
            EventKind::UserProtectedVolume => {
                format!("User has enabled imageguard on volume ({volume})")
            }
            EventKind::UserDisabledVolume => {
                format!("User has disabled imageguard on volume ({volume})")
            }
            EventKind::ErrorBadEvent => format!(
                "Error could not open imageguard verification event. Error code = {code}"
            ),
            EventKind::ErrorProtectingVolume => {
                format!("Error protecting volume ({volume}). Error code = {code}")
            }
            EventKind::ErrorUnprotectingVolume => {
                format!("Error unprotecting volume ({volume}). Error code = {code}")
            }
        };
        match (self.operation, &self.detail) {
            (Some(op), Some(d)) => text.push_str(&format!(": {} refused, {d}", op.verb())),
            (Some(op), None) => text.push_str(&format!(": {} refused", op.verb())),
            (None, Some(d)) => text.push_str(&format!(": {d}")),
            (None, None) => {}
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol() -> VolumeRef {
        VolumeRef {
            device: "/dev/loop3".into(),
            uuid: Some("0b1c".into()),
            mount_point: "/mnt/backup".into(),
        }
    }

    #[test]
    fn catalogue_ids_names_and_severities_match_the_spec() {
        let expected = [
            (100, "EVT_MIG_SERVICE_STARTED", Severity::Informational),
            (
                110,
                "EVT_MIG_DRIVER_STARTED_BY_SERVICE",
                Severity::Informational,
            ),
            (200, "EVT_MIG_SERVICE_STOPPED", Severity::Informational),
            (300, "EVT_MIG_VOLUME_PROTECTED", Severity::Informational),
            (
                310,
                "EVT_MIG_BLOCK_VERIFICATION_FILE_ACCESS",
                Severity::Informational,
            ),
            (320, "EVT_MIG_BLOCKED_FILE_ACCESS", Severity::Warning),
            (
                330,
                "EVT_MIG_USER_PROTECTED_VOLUME",
                Severity::Informational,
            ),
            (340, "EVT_MIG_USER_DISABLED_VOLUME", Severity::Informational),
            (500, "EVT_MIG_ERROR_BAD_EVENT", Severity::Error),
            (510, "EVT_MIG_ERROR_PROTECTING_VOLUME", Severity::Error),
            (520, "EVT_MIG_ERROR_UNPROTECTING_VOLUME", Severity::Error),
        ];
        assert_eq!(EventKind::ALL.len(), expected.len());
        for (kind, (id, name, sev)) in EventKind::ALL.iter().zip(expected) {
            assert_eq!((kind.id(), kind.name(), kind.severity()), (id, name, sev));
            assert_eq!(EventKind::from_id(id), Some(*kind));
            assert_eq!(kind.journal_message_id().len(), 32);
        }
    }

    #[test]
    fn texts_follow_the_reference_wording() {
        let e = Event::new(EventKind::BlockedFileAccess)
            .with_process("/usr/bin/rm", 4242)
            .with_file("/mnt/backup/a.mrimg")
            .with_operation(Operation::Delete)
            .with_detail("not certified");
        assert_eq!(
            e.message(),
            "Blocked unauthorised process (/usr/bin/rm pid 4242) accessing file (/mnt/backup/a.mrimg): delete refused, not certified"
        );
        assert_eq!(
            Event::new(EventKind::VolumeProtected)
                .with_volume(vol())
                .message(),
            "Volume (/dev/loop3 UUID=0b1c at /mnt/backup) is protected"
        );
        assert_eq!(
            Event::new(EventKind::ErrorProtectingVolume)
                .with_volume(vol())
                .with_error(16)
                .message(),
            "Error protecting volume (/dev/loop3 UUID=0b1c at /mnt/backup). Error code = 16"
        );
        assert_eq!(
            Event::new(EventKind::UserDisabledVolume)
                .with_volume(vol())
                .message(),
            "User has disabled imageguard on volume (/dev/loop3 UUID=0b1c at /mnt/backup)"
        );
        assert_eq!(
            Event::new(EventKind::BlockVerificationFileAccess).with_process("/x", 1).message(),
            "Blocking process (/x pid 1) creating verification file as process is not imageguard certified"
        );
        assert_eq!(
            Event::new(EventKind::ErrorBadEvent).with_error(2).message(),
            "Error could not open imageguard verification event. Error code = 2"
        );
    }
}
