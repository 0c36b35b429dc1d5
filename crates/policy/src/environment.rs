//! Which variables of a certified process's start-up environment can change the code it runs.
//!
//! Decided from what reads the environment, not from a list of known tricks: each runtime a
//! program has (glibc's loader, Python, Perl, a shell) reads its own documented family of
//! variables, and every variable of that family is refused unless it is documented as unable
//! to change what code runs. So a variable a future version adds to a family is refused too.
//!
//! - glibc's dynamic loader reads every `LD_*` variable (ld.so(8)) and `GLIBC_TUNABLES`;
//!   glibc itself drops a further list for setuid programs because they change what the
//!   library loads or reads (`unsecure-envvars.h`: `GCONV_PATH`, `LOCPATH`, `NLSPATH`...).
//!   A statically linked program has no loader and reads none of them.
//! - Python reads `PYTHON*` and `_PYTHON*` (python(1), `sysconfig`); and `HOME`, which places
//!   the user site folder Python imports from at start-up.
//! - Perl reads `PERL*` (perlrun: `PERL5LIB`, `PERL5OPT`, `PERL5DB`, `PERLIO`...).
//! - Shells read `BASH_ENV`, `ENV`, `SHELLOPTS`, `BASHOPTS`, `PS4` and imported functions
//!   (`BASH_FUNC_*`).

use crate::closure::{Closure, Runtime};

/// Variables glibc removes from the environment of setuid programs (its `unsecure-envvars.h`)
/// that are not `LD_*`: each changes what the library loads or parses. (`TMPDIR`, also on that
/// list, only moves temporary files and is left out.)
const GLIBC_UNSECURE: &[&str] = &[
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TZDIR",
];

/// `PYTHON*` variables documented to change how the interpreter behaves but not which code it
/// loads (buffering, byte-code writing, hashing, text encodings, fault reports, user site off).
const PYTHON_HARMLESS: &[&str] = &[
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONHASHSEED",
    "PYTHONIOENCODING",
    "PYTHONUTF8",
    "PYTHONCOERCECLOCALE",
    "PYTHONFAULTHANDLER",
    "PYTHONNOUSERSITE",
];

const SHELL_VARIABLES: &[&str] = &["BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4"];

/// How a rule names variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// Every variable whose name starts so.
    Prefix(&'static str),
    /// These names.
    Exact(&'static [&'static str]),
}

/// One family of variables a runtime reads: refused (when set and not empty) for a program
/// with that runtime, but for the names `except` documents as unable to change its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariableRule {
    pub runtime: Runtime,
    pub names: Names,
    pub except: &'static [&'static str],
    pub why: &'static str,
}

impl VariableRule {
    /// Whether the variable `name` is one this rule refuses.
    pub fn refuses(&self, name: &str) -> bool {
        let named = match self.names {
            Names::Prefix(p) => name.starts_with(p),
            Names::Exact(list) => list.contains(&name),
        };
        named && !self.except.contains(&name)
    }
}

/// The variables that can change a certified program's code, by runtime: the one place this is
/// written ([`code_changing_variable`] asks it, and [`crate::compiled::environment`] compiles
/// it for the kernel backend).
pub const VARIABLE_RULES: &[VariableRule] = &[
    VariableRule {
        runtime: Runtime::GlibcLoader,
        names: Names::Prefix("LD_"),
        except: &[],
        why: "read by the dynamic loader",
    },
    VariableRule {
        runtime: Runtime::GlibcLoader,
        names: Names::Exact(GLIBC_UNSECURE),
        except: &[],
        why: "glibc ignores it in setuid programs: it changes what the library loads",
    },
    VariableRule {
        runtime: Runtime::Python,
        names: Names::Prefix("PYTHON"),
        except: PYTHON_HARMLESS,
        why: "read by the Python interpreter",
    },
    VariableRule {
        runtime: Runtime::Python,
        names: Names::Prefix("_PYTHON"),
        except: PYTHON_HARMLESS,
        why: "read by the Python interpreter",
    },
    VariableRule {
        runtime: Runtime::Perl,
        names: Names::Prefix("PERL"),
        except: &[],
        why: "read by perl",
    },
    VariableRule {
        runtime: Runtime::Shell,
        names: Names::Exact(SHELL_VARIABLES),
        except: &[],
        why: "read by the shell",
    },
    VariableRule {
        runtime: Runtime::Shell,
        names: Names::Prefix("BASH_FUNC_"),
        except: &[],
        why: "read by the shell",
    },
];

/// The variable that turns Python's user site folder off (then `HOME` is only data).
pub const PYTHON_NO_USER_SITE: &str = "PYTHONNOUSERSITE";

/// Why one variable can change the code of a program with these runtimes, if it can.
fn variable_changes_code(runtimes: &[Runtime], name: &str) -> Option<&'static str> {
    VARIABLE_RULES
        .iter()
        .find(|r| runtimes.contains(&r.runtime) && r.refuses(name))
        .map(|r| r.why)
}

/// The first variable of `env` (name, value) that can change the code a process of a program
/// with this closure runs, described for the event. Empty values are unset. `passwd_home` is
/// the home folder of the process's user, which Python uses when `HOME` is unset.
pub fn code_changing_variable(
    closure: &Closure,
    env: &[(String, String)],
    passwd_home: Option<&str>,
) -> Option<String> {
    let set = |name: &str| env.iter().any(|(n, v)| n == name && !v.is_empty());
    for (name, value) in env {
        if value.is_empty() {
            continue;
        }
        if let Some(why) = variable_changes_code(&closure.runtimes, name) {
            return Some(format!("{name} ({why})"));
        }
    }
    if closure.runtimes.contains(&Runtime::Python) && !set(PYTHON_NO_USER_SITE) {
        let home = env
            .iter()
            .find(|(n, _)| n == "HOME")
            .map(|(_, v)| v.as_str())
            .or(passwd_home)
            .unwrap_or("");
        let normal = home.trim_end_matches('/');
        if !closure
            .homes
            .iter()
            .any(|h| h.trim_end_matches('/') == normal)
        {
            return Some(format!(
                "HOME={home} (Python imports from the user site folder under it, which is not \
                 in the certified closure; certify with --home {home} to add it)"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closure(runtimes: &[Runtime]) -> Closure {
        Closure {
            runtimes: runtimes.to_vec(),
            homes: vec!["/root".into()],
            ..Closure::default()
        }
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn variables_by_runtime() {
        use Runtime::*;
        let stat = closure(&[]);
        let dynamic = closure(&[GlibcLoader]);
        let python = closure(&[GlibcLoader, Python]);
        let perl = closure(&[GlibcLoader, Perl]);
        let shell = closure(&[GlibcLoader, Shell]);
        // (program, variable, refused?, why)
        let table: &[(&Closure, &str, bool, &str)] = &[
            (&dynamic, "LD_PRELOAD", true, "the classic injection"),
            (&dynamic, "LD_AUDIT", true, "auditing libraries run code"),
            (
                &dynamic,
                "LD_LIBRARY_PATH",
                true,
                "libraries from elsewhere",
            ),
            (
                &dynamic,
                "LD_FUTURE_THING",
                true,
                "a loader variable nobody named yet",
            ),
            (
                &dynamic,
                "GLIBC_TUNABLES",
                true,
                "tunables change which library variant loads",
            ),
            (&dynamic, "GCONV_PATH", true, "iconv modules from elsewhere"),
            (&dynamic, "LOCPATH", true, "locale data from elsewhere"),
            (&dynamic, "TMPDIR", false, "temporary files only"),
            (
                &dynamic,
                "PATH",
                false,
                "chooses programs, each checked on its own",
            ),
            (
                &dynamic,
                "PYTHONPATH",
                false,
                "a native program ignores Python's variables",
            ),
            (&stat, "LD_PRELOAD", false, "a static program has no loader"),
            (&python, "PYTHONPATH", true, "modules from elsewhere"),
            (&python, "PYTHONSTARTUP", true, "start-up code"),
            (&python, "PYTHONHOME", true, "another standard library"),
            (&python, "PYTHONUSERBASE", true, "another user site"),
            (
                &python,
                "PYTHONWARNINGS",
                true,
                "warning filters import their categories",
            ),
            (&python, "PYTHONBREAKPOINT", true, "imports the named hook"),
            (
                &python,
                "PYTHONPYCACHEPREFIX",
                true,
                "byte code from elsewhere",
            ),
            (
                &python,
                "PYTHONNEWFEATURE",
                true,
                "a Python variable nobody named yet",
            ),
            (
                &python,
                "_PYTHON_SYSCONFIGDATA_NAME",
                true,
                "sysconfig imports the named module",
            ),
            (
                &python,
                "PYTHONUNBUFFERED",
                false,
                "documented as output buffering only",
            ),
            (
                &python,
                "PYTHONDONTWRITEBYTECODE",
                false,
                "writes less, loads the same",
            ),
            (
                &python,
                "LD_PRELOAD",
                true,
                "python3 is itself dynamically linked",
            ),
            (&perl, "PERL5LIB", true, "modules from elsewhere"),
            (&perl, "PERL5OPT", true, "-M and -d options"),
            (&perl, "PERL5DB", true, "debugger code"),
            (&perl, "PERLIO", true, "I/O layers load modules"),
            (
                &perl,
                "PYTHONPATH",
                false,
                "perl ignores Python's variables",
            ),
            (&shell, "BASH_ENV", true, "a file sourced before the script"),
            (
                &shell,
                "BASH_FUNC_cp%%",
                true,
                "an exported function overriding a command",
            ),
            (&shell, "SHELLOPTS", true, "xtrace with PS4 runs commands"),
            (&shell, "HOME", false, "a shell script's HOME is data"),
        ];
        for (c, var, refused, why) in table {
            let got = code_changing_variable(c, &env(&[("HOME", "/root"), (var, "x")]), None);
            assert_eq!(got.is_some(), *refused, "{var}: {why} ({got:?})");
        }
    }

    #[test]
    fn empty_values_are_unset() {
        let c = closure(&[Runtime::GlibcLoader]);
        assert_eq!(
            code_changing_variable(&c, &env(&[("LD_PRELOAD", "")]), None),
            None
        );
    }

    #[test]
    fn python_home_must_be_a_certified_home() {
        let c = closure(&[Runtime::GlibcLoader, Runtime::Python]);
        assert_eq!(
            code_changing_variable(&c, &env(&[("HOME", "/root/")]), None),
            None
        );
        let other = code_changing_variable(&c, &env(&[("HOME", "/tmp/evil")]), None);
        assert!(other.unwrap().starts_with("HOME=/tmp/evil"));
        // Unset HOME: Python takes the passwd home.
        assert_eq!(code_changing_variable(&c, &[], Some("/root")), None);
        assert!(code_changing_variable(&c, &[], Some("/home/alice")).is_some());
        // With the user site off, HOME is only data.
        assert_eq!(
            code_changing_variable(
                &c,
                &env(&[("HOME", "/tmp/evil"), ("PYTHONNOUSERSITE", "1")]),
                None
            ),
            None
        );
    }
}
