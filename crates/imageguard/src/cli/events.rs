//! `imageguard events`: read the event database directly (works with the service stopped).

use std::time::Duration;

use imageguard_eventstore::{EventDb, EventFilter, StoredEvent};

use super::{exit, fail};
use crate::paths::PathArgs;
use crate::timefmt::{format_ns, now_ns, parse_since};

fn print(e: &StoredEvent, json: bool) {
    if json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
    } else {
        let count = if e.count > 1 {
            format!(" (x{})", e.count)
        } else {
            String::new()
        };
        println!(
            "{} {} {:<13} {}{}",
            format_ns(e.first_ns),
            e.id,
            e.severity,
            e.message,
            count
        );
    }
}

pub fn events(
    paths: &PathArgs,
    follow: bool,
    id: Option<u32>,
    since: Option<&str>,
    limit: u64,
    json: bool,
) -> i32 {
    let since_ns = match since.map(|s| parse_since(s, now_ns())).transpose() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("imageguard: {e}");
            return exit::USAGE;
        }
    };
    let path = paths.events_db();
    if !path.exists() {
        if !follow {
            eprintln!(
                "imageguard: no events recorded yet ({} does not exist)",
                path.display()
            );
            return exit::OK;
        }
        while !path.exists() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let db = match EventDb::open_read_only(&path) {
        Ok(db) => db,
        Err(e) => return fail(&e.to_string(), 1),
    };
    let mut filter = EventFilter {
        id,
        since_ns,
        after_seq: None,
        limit: Some(limit),
    };
    let mut last = 0;
    loop {
        match db.query(&filter) {
            Ok(rows) => {
                for r in &rows {
                    print(r, json);
                    last = last.max(r.seq);
                }
            }
            Err(e) => return fail(&e.to_string(), 1),
        }
        if !follow {
            return exit::OK;
        }
        filter.after_seq = Some(last);
        filter.limit = None;
        std::thread::sleep(Duration::from_millis(300));
    }
}
