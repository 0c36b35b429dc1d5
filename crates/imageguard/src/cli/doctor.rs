//! `imageguard doctor`: what this kernel offers imageguard, feature by feature, and how to turn
//! on what is missing; and how the kernel shield stands (configured, and as the service runs it).

use super::exit;
use crate::config::{Config, KernelShieldMode};
use crate::control::client::request;
use crate::control::protocol::{Request, Response};
use crate::kernel_features::{findings, KernelFacts, Standing};
use crate::paths::PathArgs;

pub fn doctor(paths: &PathArgs, json: bool) -> i32 {
    let facts = KernelFacts::read();
    let found = findings(&facts);
    let configured = match Config::load(&paths.config) {
        Ok(c) => Some(c.guard.kernel_shield),
        Err(e) => {
            eprintln!("imageguard: {e:#}");
            None
        }
    };
    let running = match request(&paths.socket(), &Request::Status) {
        Ok(Response::Status(r)) => Some(r.kernel_shield),
        _ => None,
    };
    if json {
        let v = serde_json::json!({
            "kernel": facts.release,
            "kernel_shield": {
                "configured": configured.map(|m| match m {
                    KernelShieldMode::Auto => "auto",
                    KernelShieldMode::Required => "required",
                    KernelShieldMode::Off => "off",
                }),
                "service": running,
            },
            "features": found,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return exit::OK;
    }
    println!("kernel {}", facts.release);
    for f in &found {
        let mark = match f.standing {
            Standing::Ok => "ok     ",
            Standing::Missing => "missing",
            Standing::Unknown => "-      ",
        };
        println!("{mark}  {:<20} {}", f.feature, f.found);
        if let Some(a) = &f.advice {
            println!("         {:<20} {a}", "");
        }
    }
    match configured {
        Some(KernelShieldMode::Off) => println!("\nkernel shield: off in the configuration"),
        Some(m) => println!(
            "\nkernel shield: {} in the configuration",
            if m == KernelShieldMode::Auto {
                "auto"
            } else {
                "required"
            }
        ),
        None => {}
    }
    match running {
        Some(s) => println!("the service: {s}"),
        None => println!("the service: not running"),
    }
    exit::OK
}
