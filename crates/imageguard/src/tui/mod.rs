//! `imageguard tui`: the admin's console, as the reference's settings dialog has it, over the
//! control socket: *Settings* (guard on/off with "restart service on reboot", automatic
//! protection of backup drives, sync tools; each toggled with a key and applied live),
//! *Volumes* (protected and absent drives; unprotect, eject), *Certified programs* (add by
//! path, remove), *Events* (the live table, filtered by id and severity, and denials per hour
//! over the last 24 hours). Fits 80x24 and works over ssh; a non-root user sees everything and
//! changes nothing (the service refuses, the console says so). With the admin lock set, a
//! change asks for its passphrase.
//!
//! [`App`] holds what is shown and turns keys into requests; [`view`] draws it.

mod view;

use std::time::{Duration, Instant};

use imageguard_eventstore::StoredEvent;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind};

use crate::admin_lock::NEEDS_PASSPHRASE;
use crate::control::client::request;
use crate::control::protocol::{Request, Response};
use crate::paths::PathArgs;
use crate::service::report::{CertifiedProgram, StatusReport};

/// The tabs, in the reference's order.
pub const TABS: [&str; 4] = ["Settings", "Volumes", "Certified", "Events"];

/// The rows of the Settings tab.
pub const SETTINGS_ROWS: [&str; 4] = [
    "Guard (protect backup files)",
    "Restart service on reboot",
    "Automatically protect local backup drives",
    "Allow sync tools (rsync, rclone) by the sync rules",
];

/// Event id filters the Events tab cycles through (0: all).
pub const ID_FILTERS: [u32; 6] = [0, 320, 310, 330, 340, 500];
/// Severity filters (empty: all).
pub const SEVERITY_FILTERS: [&str; 4] = ["", "warning", "error", "informational"];

/// A line being typed: a path to certify, or the admin passphrase (hidden) for `pending`.
pub struct Input {
    pub prompt: String,
    pub text: String,
    pub hidden: bool,
    /// For a passphrase: the request it authorizes.
    pub pending: Option<Request>,
}

pub struct App {
    paths: PathArgs,
    pub tab: usize,
    pub row: usize,
    pub status: Option<StatusReport>,
    pub programs: Vec<CertifiedProgram>,
    pub events: Vec<StoredEvent>,
    pub id_filter: usize,
    pub severity_filter: usize,
    /// What the last action came to (or why nothing is shown).
    pub message: String,
    pub input: Option<Input>,
    /// "Restart service on reboot": used when the guard is turned off from here.
    pub restart_on_reboot: bool,
    pub root: bool,
    quit: bool,
}

impl App {
    pub fn new(paths: PathArgs) -> App {
        App {
            paths,
            tab: 0,
            row: 0,
            status: None,
            programs: vec![],
            events: vec![],
            id_filter: 0,
            severity_filter: 0,
            message: String::new(),
            input: None,
            restart_on_reboot: true,
            root: rustix::process::geteuid().is_root(),
            quit: false,
        }
    }

    /// Read everything shown again from the service.
    pub fn refresh(&mut self) {
        match request(&self.paths.socket(), &Request::Status) {
            Ok(Response::Status(s)) => {
                if s.protection == "off" {
                    self.restart_on_reboot = s.restart_on_reboot;
                }
                self.status = Some(*s);
            }
            Ok(Response::Error { message, .. }) => self.message = message,
            Ok(_) => {}
            Err(e) => {
                self.status = None;
                self.message = format!("{e}");
            }
        }
        if let Ok(Response::Certified { programs }) =
            request(&self.paths.socket(), &Request::Certified)
        {
            self.programs = programs;
        }
        if let Ok(Response::Events { events }) =
            request(&self.paths.socket(), &Request::Events { limit: 2000 })
        {
            self.events = events;
        }
    }

    /// The events the filters let through, newest first.
    pub fn shown_events(&self) -> Vec<&StoredEvent> {
        let id = ID_FILTERS[self.id_filter];
        let sev = SEVERITY_FILTERS[self.severity_filter];
        self.events
            .iter()
            .rev()
            .filter(|e| id == 0 || e.id == id)
            .filter(|e| sev.is_empty() || e.severity == sev)
            .collect()
    }

    /// Send a change; the answer becomes the message (a passphrase is asked when needed).
    fn change(&mut self, req: Request) {
        if !self.root {
            self.message = "read-only: only root may change imageguard".into();
            return;
        }
        self.send(req);
    }

    fn send(&mut self, req: Request) {
        match request(&self.paths.socket(), &req) {
            Ok(Response::Ok { message, .. }) => self.message = message,
            Ok(Response::Error { message, .. }) if message.contains(NEEDS_PASSPHRASE) => {
                self.input = Some(Input {
                    prompt: "admin passphrase".into(),
                    text: String::new(),
                    hidden: true,
                    pending: Some(req),
                });
            }
            Ok(Response::Error { message, .. }) => self.message = message,
            Ok(other) => self.message = format!("unexpected answer: {other:?}"),
            Err(e) => self.message = e.to_string(),
        }
        self.refresh();
    }

    fn rows(&self) -> usize {
        match self.tab {
            0 => SETTINGS_ROWS.len(),
            1 => self.status.as_ref().map_or(0, |s| s.volumes.len()),
            2 => self.programs.len(),
            _ => self.shown_events().len(),
        }
    }

    /// Toggle the selected setting.
    fn toggle(&mut self) {
        let Some(s) = self.status.clone() else { return };
        let on = s.protection == "on";
        let req = match self.row {
            0 if on => Request::Off {
                restart_on_reboot: self.restart_on_reboot,
            },
            0 => Request::On,
            1 => {
                self.restart_on_reboot = !self.restart_on_reboot;
                if on {
                    self.message = format!(
                        "restart on reboot: {} (applies when the guard is turned off)",
                        if self.restart_on_reboot { "yes" } else { "no" }
                    );
                    return;
                }
                Request::Off {
                    restart_on_reboot: self.restart_on_reboot,
                }
            }
            2 => Request::SetSetting {
                key: "protection.auto_protect_backup_drives".into(),
                value: (!s.auto_protect_backup_drives).to_string(),
            },
            _ => Request::SetSetting {
                key: "sync_tools.allow".into(),
                value: (!s.sync_tools_allowed).to_string(),
            },
        };
        self.change(req);
    }

    fn key(&mut self, code: KeyCode) {
        if let Some(mut input) = self.input.take() {
            match code {
                KeyCode::Esc => self.message = "cancelled".into(),
                KeyCode::Enter => match input.pending.take() {
                    Some(req) => self.send(Request::Authorized {
                        passphrase: input.text,
                        request: Box::new(req),
                    }),
                    None => {
                        let path = std::path::absolute(&input.text)
                            .unwrap_or_else(|_| input.text.clone().into());
                        self.change(Request::Certify {
                            path,
                            force: false,
                            also: vec![],
                            learned: vec![],
                            homes: vec![],
                            learn_job: None,
                            helper_of: None,
                            sync_tool: None,
                        });
                    }
                },
                KeyCode::Backspace => {
                    input.text.pop();
                    self.input = Some(input);
                }
                KeyCode::Char(c) => {
                    input.text.push(c);
                    self.input = Some(input);
                }
                _ => self.input = Some(input),
            }
            return;
        }
        match code {
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            KeyCode::Tab | KeyCode::Right => self.switch((self.tab + 1) % TABS.len()),
            KeyCode::BackTab | KeyCode::Left => {
                self.switch((self.tab + TABS.len() - 1) % TABS.len())
            }
            KeyCode::Char(c @ '1'..='4') => self.switch(c as usize - '1' as usize),
            KeyCode::Down | KeyCode::Char('j') => {
                self.row = (self.row + 1).min(self.rows().saturating_sub(1))
            }
            KeyCode::Up | KeyCode::Char('k') => self.row = self.row.saturating_sub(1),
            KeyCode::Char('r') => {
                self.refresh();
                self.message = "refreshed".into();
            }
            KeyCode::Char(' ') | KeyCode::Enter if self.tab == 0 => self.toggle(),
            KeyCode::Char('u') if self.tab == 1 => {
                if let Some(v) = self.status.as_ref().and_then(|s| s.volumes.get(self.row)) {
                    let path = v.mount_point.clone();
                    self.change(Request::Unprotect { path });
                }
            }
            KeyCode::Char('e') if self.tab == 1 => {
                if let Some(v) = self.status.as_ref().and_then(|s| s.volumes.get(self.row)) {
                    let path = v.mount_point.clone();
                    self.change(Request::Eject { path });
                }
            }
            KeyCode::Char('a') if self.tab == 2 => {
                self.input = Some(Input {
                    prompt: "certify program (path)".into(),
                    text: String::new(),
                    hidden: false,
                    pending: None,
                })
            }
            KeyCode::Char('d') if self.tab == 2 => {
                if let Some(p) = self.programs.get(self.row) {
                    let path = p.entry.path.clone().into();
                    self.change(Request::Uncertify { path });
                }
            }
            KeyCode::Char('i') if self.tab == 3 => {
                self.id_filter = (self.id_filter + 1) % ID_FILTERS.len();
                self.row = 0;
            }
            KeyCode::Char('s') if self.tab == 3 => {
                self.severity_filter = (self.severity_filter + 1) % SEVERITY_FILTERS.len();
                self.row = 0;
            }
            _ => {}
        }
    }

    fn switch(&mut self, tab: usize) {
        self.tab = tab;
        self.row = 0;
    }
}

/// End the process when the console's terminal hangs up (its window closed, its tmux session
/// or ssh connection gone). crossterm's input loop cannot notice: a hung-up terminal reads as
/// ready with nothing in it, and `event::poll` spins on it for ever, timeout or not
/// (crossterm-rs/crossterm#793); under `runuser` or `sudo` SIGHUP is ignored, so nothing else
/// ends it. A thread waits in poll(2) on the terminal for nothing but a hang-up or an error
/// (never reported as a wait for input), so it costs nothing until then; there is no screen
/// left to restore.
fn exit_on_hang_up() {
    use rustix::event::{poll, PollFd, PollFlags};
    std::thread::spawn(move || {
        let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
        let mut fds = [
            PollFd::new(&stdin, PollFlags::empty()),
            PollFd::new(&stdout, PollFlags::empty()),
        ];
        loop {
            match poll(&mut fds, None) {
                Ok(_) => {
                    let gone = PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
                    if fds.iter().any(|f| f.revents().intersects(gone)) {
                        std::process::exit(crate::cli::exit::FAILURE);
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
        }
    });
}

/// Run the console until `q`, or until its terminal goes away.
pub fn run(paths: &PathArgs) -> i32 {
    let mut app = App::new(paths.clone());
    app.refresh();
    if app.status.is_none() {
        return crate::cli::fail(&format!("the service does not answer: {}", app.message), 1);
    }
    if !app.root {
        app.message = "read-only: you are not root".into();
    }
    let mut terminal = ratatui::init();
    exit_on_hang_up();
    let mut last = Instant::now();
    let result = (|| -> std::io::Result<()> {
        while !app.quit {
            terminal.draw(|f| view::draw(f, &app))?;
            if event::poll(Duration::from_millis(250))? {
                if let TermEvent::Key(k) = event::read()? {
                    if k.kind == KeyEventKind::Press {
                        app.key(k.code);
                    }
                }
            }
            if last.elapsed() >= Duration::from_secs(1) {
                app.refresh();
                last = Instant::now();
            }
        }
        Ok(())
    })();
    ratatui::restore();
    match result {
        Ok(()) => crate::cli::exit::OK,
        Err(e) => crate::cli::fail(&format!("terminal: {e}"), 1),
    }
}
