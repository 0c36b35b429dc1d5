//! `imageguard generate man|completions SHELL|config` (hidden): the manual page (section 8) and
//! shell completions, generated from the command line's own definition, and the default
//! configuration, for the package.

use clap::CommandFactory;

use super::{exit, Cli};

pub fn generate(what: &str, shell: Option<&str>) -> i32 {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout();
    match (what, shell) {
        ("config", None) => {
            print!("{}", crate::config::DEFAULT_TOML);
            exit::OK
        }
        ("man", None) => match clap_mangen::Man::new(cmd).section("8").render(&mut out) {
            Ok(()) => exit::OK,
            Err(e) => super::fail(&format!("writing the manual page: {e}"), 1),
        },
        ("completions", Some(sh)) => {
            let Ok(shell) = sh.parse::<clap_complete::Shell>() else {
                return super::fail(
                    &format!("{sh}: not a shell (bash, zsh, fish, elvish, powershell)"),
                    libc::EINVAL,
                );
            };
            clap_complete::generate(shell, &mut cmd, "imageguard", &mut out);
            exit::OK
        }
        _ => super::fail(
            "usage: imageguard generate man | completions SHELL | config",
            libc::EINVAL,
        ),
    }
}
