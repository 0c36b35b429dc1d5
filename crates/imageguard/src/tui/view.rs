//! Drawing the console: the tab bar, the selected tab, a line of keys and the last message.
//! Laid out for 80x24 and up.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Paragraph, Row, Table, Tabs};
use ratatui::Frame;

use super::{App, ID_FILTERS, SETTINGS_ROWS, SEVERITY_FILTERS, TABS};
use crate::timefmt::{format_ns, now_ns};

pub fn draw(f: &mut Frame, app: &App) {
    let [head, top, body, keys, msg] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let title = match &app.status {
        Some(s) => format!(
            " imageguard: guard {}{} ",
            s.protection,
            if app.root { "" } else { " (read-only)" }
        ),
        None => " imageguard: service not answering ".into(),
    };
    f.render_widget(Paragraph::new(title).bold(), head);
    f.render_widget(
        Tabs::new(
            TABS.iter()
                .enumerate()
                .map(|(i, t)| format!("{} {t}", i + 1)),
        )
        .select(app.tab)
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        top,
    );
    match app.tab {
        0 => settings(f, app, body),
        1 => volumes(f, app, body),
        2 => certified(f, app, body),
        _ => events(f, app, body),
    }
    let help = match app.tab {
        0 => "up/down select  space toggle  1-4 tabs  r refresh  q quit",
        1 => "up/down select  u unprotect  e eject  1-4 tabs  q quit",
        2 => "up/down select  a add  d remove  1-4 tabs  q quit",
        _ => "i filter id  s filter severity  up/down  1-4 tabs  q quit",
    };
    f.render_widget(Paragraph::new(help).dim(), keys);
    let line = match &app.input {
        Some(i) => format!(
            "{}: {}_",
            i.prompt,
            if i.hidden {
                "*".repeat(i.text.chars().count())
            } else {
                i.text.clone()
            }
        ),
        None => app.message.clone(),
    };
    f.render_widget(Paragraph::new(line).bold(), msg);
}

fn selected(i: usize, row: usize) -> Style {
    if i == row {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new()
    }
}

fn settings(f: &mut Frame, app: &App, area: Rect) {
    let Some(s) = &app.status else { return };
    let values = [
        s.protection == "on",
        app.restart_on_reboot,
        s.auto_protect_backup_drives,
        s.sync_tools_allowed,
    ];
    let rows = SETTINGS_ROWS
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (name, v))| {
            Row::new(vec![
                format!("[{}]", if v { "x" } else { " " }),
                name.to_string(),
            ])
            .style(selected(i, app.row))
        });
    let mut lines = vec![];
    lines.push(format!(
        "protected volumes: {}   certified programs: {}   admin lock: {}",
        s.volumes.len(),
        s.certified_programs,
        if s.admin_lock { "set" } else { "not set" }
    ));
    for w in &s.warnings {
        lines.push(format!("warning: {w}"));
    }
    let [table, info] = Layout::vertical([Constraint::Length(6), Constraint::Min(1)]).areas(area);
    f.render_widget(
        Table::new(rows, [Constraint::Length(4), Constraint::Min(20)])
            .block(Block::bordered().title(" Settings (applied at once) ")),
        table,
    );
    f.render_widget(
        Paragraph::new(lines.join("\n")).wrap(ratatui::widgets::Wrap { trim: true }),
        info,
    );
}

fn volumes(f: &mut Frame, app: &App, area: Rect) {
    let Some(s) = &app.status else { return };
    let mut rows: Vec<Row> = s
        .volumes
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Row::new(vec![
                v.mount_point.display().to_string(),
                v.device.clone(),
                v.uuid.clone().unwrap_or_else(|| "-".into()),
                v.location.clone(),
                v.files_protected.to_string(),
                v.denied.to_string(),
                if v.lock_only {
                    "lock only".into()
                } else if v.guard_running {
                    "guarded".into()
                } else {
                    "DOWN".into()
                },
            ])
            .style(selected(i, app.row))
        })
        .collect();
    rows.extend(s.absent.iter().map(|a| {
        Row::new(vec![
            a.mount_point.display().to_string(),
            a.device.clone(),
            a.uuid.clone().unwrap_or_else(|| "-".into()),
            "-".into(),
            "-".into(),
            "-".into(),
            "absent".into(),
        ])
        .dim()
    }));
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(16),
                Constraint::Length(11),
                Constraint::Length(10),
                Constraint::Length(7),
                Constraint::Length(7),
                Constraint::Length(7),
                Constraint::Length(9),
            ],
        )
        .header(
            Row::new([
                "MOUNT POINT",
                "DEVICE",
                "UUID",
                "WHERE",
                "FILES",
                "DENIED",
                "STATE",
            ])
            .bold(),
        )
        .block(Block::bordered().title(" Protected volumes ")),
        area,
    );
}

fn certified(f: &mut Frame, app: &App, area: Rect) {
    let rows = app.programs.iter().enumerate().map(|(i, p)| {
        let sha = p
            .entry
            .sha256
            .get(..12)
            .unwrap_or(&p.entry.sha256)
            .to_string();
        Row::new(vec![
            p.entry.path.clone(),
            sha,
            if p.intact { "intact" } else { "CHANGED" }.to_string(),
        ])
        .style(selected(i, app.row))
    });
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(30),
                Constraint::Length(13),
                Constraint::Length(8),
            ],
        )
        .header(Row::new(["PROGRAM", "SHA-256", "CLOSURE"]).bold())
        .block(Block::bordered().title(" Certified programs ")),
        area,
    );
}

/// Denials (event 320, with their counts) per hour over the last 24 hours, oldest first.
fn denials_per_hour(app: &App) -> [u64; 24] {
    let now = now_ns();
    let hour = 3_600_000_000_000i64;
    let mut out = [0u64; 24];
    for e in app.events.iter().filter(|e| e.id == 320) {
        let ago = (now - e.last_ns) / hour;
        if (0..24).contains(&ago) {
            out[23 - ago as usize] += e.count;
        }
    }
    out
}

fn events(f: &mut Frame, app: &App, area: Rect) {
    let [chart, table] = Layout::vertical([Constraint::Length(7), Constraint::Min(3)]).areas(area);
    let per_hour = denials_per_hour(app);
    let bars: Vec<Bar> = per_hour
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Bar::default()
                .value(*n)
                .text_value(String::new())
                // Hours ago, every sixth bar (the bars are two columns wide).
                .label(Line::from(if i % 6 == 5 {
                    format!("{:>2}", 23 - i)
                } else {
                    String::new()
                }))
        })
        .collect();
    f.render_widget(
        BarChart::default()
            .block(Block::bordered().title(format!(
                " Denials per hour, last 24 h, labels in hours ago (total {}) ",
                per_hour.iter().sum::<u64>()
            )))
            .data(BarGroup::default().bars(&bars))
            .bar_width(2)
            .bar_gap(1),
        chart,
    );
    let id = ID_FILTERS[app.id_filter];
    let sev = SEVERITY_FILTERS[app.severity_filter];
    let shown = app.shown_events();
    let rows = shown.iter().enumerate().skip(app.row).map(|(i, e)| {
        Row::new(vec![
            format_ns(e.first_ns).get(11..19).unwrap_or("").to_string(),
            e.id.to_string(),
            e.name.trim_start_matches("EVT_MIG_").to_string(),
            e.severity.clone(),
            if e.count > 1 {
                format!("{} x {}", e.count, e.message)
            } else {
                e.message.clone()
            },
        ])
        .style(selected(i, app.row))
    });
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(8),
                Constraint::Length(3),
                Constraint::Length(16),
                Constraint::Length(7),
                Constraint::Min(20),
            ],
        )
        .header(Row::new(["TIME", "ID", "NAME", "LEVEL", "DESCRIPTION"]).bold())
        .block(Block::bordered().title(format!(
            " Events: id {} severity {} ({} shown) ",
            if id == 0 {
                "all".into()
            } else {
                id.to_string()
            },
            if sev.is_empty() { "all" } else { sev },
            shown.len()
        ))),
        table,
    );
}
