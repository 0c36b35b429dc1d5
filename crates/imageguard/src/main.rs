//! The `imageguard` command.

use clap::Parser;
use imageguard::cli::{
    self, certify, demo, doctor, events, exit, metrics, protect, settings, status, verify, Cli,
    Command,
};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().filter_or("IMAGEGUARD_LOG", "warn"))
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let p = &cli.paths;
    let code = match &cli.command {
        Command::Service => match imageguard::service::run(p.clone()) {
            Ok(imageguard::service::Stopped::BySignal) => exit::OK,
            Ok(imageguard::service::Stopped::OnRequest) => exit::STOPPED_ON_REQUEST,
            Err(e) => cli::fail(&format!("{e:#}"), 1),
        },
        Command::Protect { path } => protect::protect(p, path),
        Command::Unprotect { path } => protect::unprotect(p, path),
        Command::Eject { path } => protect::eject(p, path),
        Command::Maintenance {
            path,
            minutes,
            close,
        } => protect::maintenance(p, path, if *close { 0 } else { *minutes }),
        Command::Off { restart_on_reboot } => protect::off(p, *restart_on_reboot),
        Command::On => protect::on(p),
        Command::Stop => protect::stop(p),
        Command::Status { json } => status::status(p, *json),
        Command::Doctor { json } => doctor::doctor(p, *json),
        Command::Verify { mount_points, json } => verify::verify(p, mount_points, *json),
        Command::Probe { op, file } => verify::probe_child(op, file),
        Command::Metrics => metrics::metrics(p),
        Command::Tui => imageguard::tui::run(p),
        Command::Generate { what, shell } => cli::generate::generate(what, shell.as_deref()),
        Command::Lock { command } => cli::lock::lock(p, command),
        Command::Settings { key, value, json } => {
            settings::settings(p, key.as_deref(), value.as_deref(), *json)
        }
        Command::Certify {
            path,
            force,
            also,
            home,
            learn,
            command,
            helpers,
            helper,
            helper_of,
            sync_tool,
        } => certify::certify(
            p,
            &certify::CertifyArgs {
                path,
                force: *force,
                also,
                homes: home,
                learn: learn.then_some(command.as_slice()),
                helpers: *helpers,
                helper: helper.as_slice(),
                helper_of: helper_of.as_deref(),
                sync_tool: *sync_tool,
            },
        ),
        Command::Uncertify { path } => certify::uncertify(p, path),
        Command::Certified { json } => certify::certified(p, *json),
        Command::Definitions { action, json } => match action {
            None => cli::definitions::definitions(p, *json),
            Some(a) => cli::definitions::approve(p, a),
        },
        Command::Events {
            follow,
            id,
            since,
            limit,
            json,
        } => events::events(p, *follow, *id, since.as_deref(), *limit, *json),
        Command::DefaultConfig => {
            print!("{}", imageguard::config::DEFAULT_TOML);
            exit::OK
        }
        Command::Demo { keep } => demo::demo(*keep),
        Command::DemoWriter { dir } => demo::writer(dir),
        Command::Sentinel {
            pid,
            state_file,
            runtime_dir,
            after_ms,
        } => imageguard::service::sentinel::run(
            *pid,
            state_file,
            runtime_dir,
            std::time::Duration::from_millis(*after_ms),
        ),
    };
    std::process::exit(code);
}
