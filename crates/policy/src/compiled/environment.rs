//! The environment rules ([`crate::environment::VARIABLE_RULES`]) compiled for a matcher that
//! compares bytes (the kernel backend's program reading a certified program's start-up
//! variables at exec): each rule as a name or prefix of at most [`MAX_NAME`] bytes with the
//! runtime it applies to and the exceptions it makes, and each program's runtimes as a mask.
//!
//! [`CompiledEnvironment::refuses`] and [`CompiledEnvironment::home_refused`] are the model of
//! that matcher; the tests prove they refuse what [`crate::environment::code_changing_variable`]
//! refuses, and where the kernel knows less (an unset `HOME`, which the core resolves through
//! the password database) the model refuses, so the kernel is never the more trusting one.

use crate::closure::Runtime;
use crate::environment::{Names, PYTHON_NO_USER_SITE, VARIABLE_RULES};

/// The longest variable name or prefix a compiled rule holds.
pub const MAX_NAME: usize = 32;
/// The most rules, and the most exceptions, a compiled set holds.
pub const MAX_RULES: usize = 32;
pub const MAX_EXCEPTIONS: usize = 16;
/// The most certified homes a program's record carries for the kernel, and their longest path.
pub const MAX_HOMES: usize = 4;
pub const MAX_HOME: usize = 128;

/// A runtime as a bit of a program's mask.
pub fn runtime_bit(r: Runtime) -> u32 {
    match r {
        Runtime::GlibcLoader => 1,
        Runtime::Python => 2,
        Runtime::Perl => 4,
        Runtime::Shell => 8,
    }
}

/// A program's runtimes as a mask.
pub fn runtime_mask(runtimes: &[Runtime]) -> u32 {
    runtimes.iter().fold(0, |m, r| m | runtime_bit(*r))
}

/// One compiled rule: variables named `name` (or starting so, `prefix`) are refused in a
/// program with the runtime `runtime` (a bit), but for the exceptions whose bits `except` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledRule {
    pub runtime: u32,
    pub prefix: bool,
    pub name: Vec<u8>,
    pub except: u32,
}

/// The rules and the exceptions they index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledEnvironment {
    pub rules: Vec<CompiledRule>,
    pub exceptions: Vec<Vec<u8>>,
    /// The variable that turns Python's user site off (its `HOME` then is only data).
    pub no_user_site: Vec<u8>,
}

impl CompiledEnvironment {
    /// The policy core's rules, compiled. Every name fits: a test proves it, so this cannot
    /// fail at run time.
    pub fn compile() -> CompiledEnvironment {
        let mut c = CompiledEnvironment {
            no_user_site: PYTHON_NO_USER_SITE.as_bytes().to_vec(),
            ..CompiledEnvironment::default()
        };
        for rule in VARIABLE_RULES {
            let mut except = 0;
            for e in rule.except {
                let i = match c.exceptions.iter().position(|x| x == e.as_bytes()) {
                    Some(i) => i,
                    None => {
                        c.exceptions.push(e.as_bytes().to_vec());
                        c.exceptions.len() - 1
                    }
                };
                except |= 1 << i;
            }
            let runtime = runtime_bit(rule.runtime);
            match rule.names {
                Names::Prefix(p) => c.rules.push(CompiledRule {
                    runtime,
                    prefix: true,
                    name: p.as_bytes().to_vec(),
                    except,
                }),
                Names::Exact(list) => c.rules.extend(list.iter().map(|n| CompiledRule {
                    runtime,
                    prefix: false,
                    name: n.as_bytes().to_vec(),
                    except,
                })),
            }
        }
        c
    }

    /// Whether the variable `name` (set, not empty) is refused in a program of runtimes `mask`.
    pub fn refuses(&self, mask: u32, name: &[u8]) -> bool {
        self.rules.iter().any(|r| {
            let named = if r.prefix {
                name.starts_with(&r.name)
            } else {
                name == r.name.as_slice()
            };
            named
                && r.runtime & mask != 0
                && !self
                    .exceptions
                    .iter()
                    .enumerate()
                    .any(|(i, e)| r.except & (1 << i) != 0 && e.as_slice() == name)
        })
    }

    /// Whether the environment `env` (name, value; empty values unset) of a program of
    /// runtimes `mask` whose certified homes are `homes` puts Python's user site somewhere
    /// not certified: a Python program without the user site turned off must have `HOME` set
    /// to one of `homes` (trailing slashes aside). An unset `HOME` is refused (the core would
    /// ask the password database, which the kernel cannot).
    pub fn home_refused(&self, mask: u32, homes: &[Vec<u8>], env: &[(&[u8], &[u8])]) -> bool {
        if mask & runtime_bit(Runtime::Python) == 0 {
            return false;
        }
        let value = |n: &[u8]| {
            env.iter()
                .find(|(k, v)| *k == n && !v.is_empty())
                .map(|(_, v)| *v)
        };
        if value(&self.no_user_site).is_some() {
            return false;
        }
        let trim = |s: &[u8]| {
            let mut n = s.len();
            while n > 0 && s[n - 1] == b'/' {
                n -= 1;
            }
            s[..n].to_vec()
        };
        match env.iter().find(|(k, _)| *k == b"HOME") {
            Some((_, home)) => !homes.iter().any(|h| trim(h) == trim(home)),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::closure::Closure;
    use crate::environment::code_changing_variable;

    const RUNTIMES: [Runtime; 4] = [
        Runtime::GlibcLoader,
        Runtime::Python,
        Runtime::Perl,
        Runtime::Shell,
    ];

    fn subset(bits: u8) -> Vec<Runtime> {
        RUNTIMES
            .into_iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, r)| r)
            .collect()
    }

    #[test]
    fn every_rule_fits_the_kernels_bounds() {
        let c = CompiledEnvironment::compile();
        assert!(c.rules.len() <= MAX_RULES, "{} rules", c.rules.len());
        assert!(c.exceptions.len() <= MAX_EXCEPTIONS);
        assert!(c.rules.iter().all(|r| r.name.len() <= MAX_NAME));
        assert!(c.exceptions.iter().all(|e| e.len() <= MAX_NAME));
    }

    /// Each variable alone (HOME certified, so only the variable decides).
    fn agree(bits: u8, name: &str) {
        let runtimes = subset(bits);
        let closure = Closure {
            runtimes: runtimes.clone(),
            homes: vec!["/root".into()],
            ..Closure::default()
        };
        let env = vec![
            ("HOME".to_string(), "/root".to_string()),
            (name.to_string(), "x".to_string()),
        ];
        let core = code_changing_variable(&closure, &env, None).is_some();
        let c = CompiledEnvironment::compile();
        let mask = runtime_mask(&runtimes);
        let env_bytes: Vec<(&[u8], &[u8])> = env
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        let kernel = env_bytes.iter().any(|(n, _)| c.refuses(mask, n))
            || c.home_refused(mask, &[b"/root".to_vec()], &env_bytes);
        assert_eq!(kernel, core, "{name} with {runtimes:?}");
    }

    #[test]
    fn names_that_are_easy_to_get_wrong() {
        let names = [
            "LD_PRELOAD",
            "LD_",
            "LD",
            "ld_preload",
            "GLIBC_TUNABLES",
            "GLIBC_TUNABLESX",
            "TMPDIR",
            "PYTHONPATH",
            "PYTHONUNBUFFERED",
            "PYTHONUNBUFFEREDX",
            "_PYTHON_SYSCONFIGDATA_NAME",
            "PYTHONNOUSERSITE",
            "PERL5LIB",
            "BASH_ENV",
            "BASH_ENVX",
            "BASH_FUNC_cp%%",
            "ENV",
            "PS4",
            "PATH",
        ];
        for bits in 0..16 {
            for n in names {
                agree(bits, n);
            }
        }
    }

    #[test]
    fn python_homes() {
        let c = CompiledEnvironment::compile();
        let py = runtime_mask(&[Runtime::GlibcLoader, Runtime::Python]);
        let homes = [b"/root".to_vec()];
        let env = |v: &[(&'static str, &'static str)]| -> Vec<(&'static [u8], &'static [u8])> {
            v.iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
                .collect()
        };
        assert!(!c.home_refused(py, &homes, &env(&[("HOME", "/root//")])));
        assert!(c.home_refused(py, &homes, &env(&[("HOME", "/tmp/evil")])));
        assert!(c.home_refused(py, &homes, &env(&[])), "unset: refused");
        assert!(!c.home_refused(
            py,
            &homes,
            &env(&[("HOME", "/tmp/evil"), ("PYTHONNOUSERSITE", "1")])
        ));
        assert!(c.home_refused(
            py,
            &homes,
            &env(&[("HOME", "/tmp/evil"), ("PYTHONNOUSERSITE", "")])
        ));
        assert!(!c.home_refused(runtime_mask(&[Runtime::GlibcLoader]), &homes, &env(&[])));
        // Where the core would trust, the kernel trusts too, but for an unset HOME.
        let closure = Closure {
            runtimes: vec![Runtime::GlibcLoader, Runtime::Python],
            homes: vec!["/root".into()],
            ..Closure::default()
        };
        assert!(code_changing_variable(&closure, &[], Some("/root")).is_none());
    }

    proptest! {
        #[test]
        fn the_compiled_rules_refuse_what_the_core_refuses(
            name in "(LD_|PYTHON|_PYTHON|PERL|BASH_FUNC_|GLIBC_|BASH|PS|ENV|)[A-Z0-9_%]{0,8}",
            bits in 0u8..16,
        ) {
            prop_assume!(name != "HOME" && !name.is_empty());
            agree(bits, &name);
        }
    }
}
