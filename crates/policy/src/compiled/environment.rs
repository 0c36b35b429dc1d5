//! The environment rules ([`crate::environment::VARIABLE_RULES`]) compiled for a matcher that
//! looks names up (the kernel backend's program reading a certified program's start-up
//! variables at exec): every name a rule or an exception spells out, with the runtimes that
//! refuse it (decided here, by the rules themselves, exceptions included), and every prefix a
//! rule names, with the runtimes that refuse what starts so. A variable spelled out is decided
//! by its own entry; any other by the prefixes it starts with. Names and prefixes are at most
//! [`MAX_NAME`] bytes; a program's runtimes are a mask ([`runtime_mask`]).
//!
//! [`CompiledEnvironment::refuses`] and [`CompiledEnvironment::home_refused`] are the model of
//! that matcher; the tests prove they refuse what [`crate::environment::code_changing_variable`]
//! refuses, and where the kernel knows less (an unset `HOME`, which the core resolves through
//! the password database) the model refuses, so the kernel is never the more trusting one.

use crate::closure::Runtime;
use crate::environment::{Names, PYTHON_NO_USER_SITE, VARIABLE_RULES};

/// The longest variable name or prefix a compiled entry holds.
pub const MAX_NAME: usize = 32;
/// The most distinct prefix lengths (the matcher looks each length up once).
pub const MAX_PREFIX_LENGTHS: usize = 8;
/// The longest certified home the kernel compares.
pub const MAX_HOME: usize = 128;

const RUNTIMES: [Runtime; 4] = [
    Runtime::GlibcLoader,
    Runtime::Python,
    Runtime::Perl,
    Runtime::Shell,
];

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

/// The runtimes whose rules refuse the variable `name`, by the rules themselves.
fn refusing(name: &str) -> u32 {
    RUNTIMES
        .into_iter()
        .filter(|&rt| {
            VARIABLE_RULES
                .iter()
                .any(|r| r.runtime == rt && r.refuses(name))
        })
        .fold(0, |m, rt| m | runtime_bit(rt))
}

/// The rules, as names and prefixes with the runtimes that refuse them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledEnvironment {
    /// Names spelled out (a rule's or an exception's): decided by this entry alone.
    pub exact: Vec<(Vec<u8>, u32)>,
    /// Prefixes: a name not spelled out is refused by the runtimes of each prefix it starts
    /// with.
    pub prefixes: Vec<(Vec<u8>, u32)>,
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
        let mut spelled: Vec<&str> = vec![PYTHON_NO_USER_SITE];
        for rule in VARIABLE_RULES {
            spelled.extend(rule.except.iter().copied());
            match rule.names {
                Names::Prefix(p) => match c.prefixes.iter_mut().find(|(q, _)| q == p.as_bytes()) {
                    Some((_, m)) => *m |= runtime_bit(rule.runtime),
                    None => c
                        .prefixes
                        .push((p.as_bytes().to_vec(), runtime_bit(rule.runtime))),
                },
                Names::Exact(list) => spelled.extend(list.iter().copied()),
            }
        }
        spelled.sort_unstable();
        spelled.dedup();
        c.exact = spelled
            .into_iter()
            .map(|n| (n.as_bytes().to_vec(), refusing(n)))
            .collect();
        c
    }

    /// The distinct lengths of the prefixes, shortest first.
    pub fn prefix_lengths(&self) -> Vec<usize> {
        let mut l: Vec<usize> = self.prefixes.iter().map(|(p, _)| p.len()).collect();
        l.sort_unstable();
        l.dedup();
        l
    }

    /// Whether the variable `name` (set, not empty) is refused in a program of runtimes `mask`.
    pub fn refuses(&self, mask: u32, name: &[u8]) -> bool {
        let refused = match self.exact.iter().find(|(n, _)| n == name) {
            Some((_, m)) => *m,
            None => self
                .prefixes
                .iter()
                .filter(|(p, _)| name.starts_with(p))
                .fold(0, |m, (_, r)| m | r),
        };
        refused & mask != 0
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
        match env.iter().find(|(k, _)| *k == b"HOME") {
            Some((_, home)) => !homes.iter().any(|h| trim_home(h) == trim_home(home)),
            None => true,
        }
    }
}

/// A home as the kernel compares it: without trailing slashes.
pub fn trim_home(s: &[u8]) -> &[u8] {
    let mut n = s.len();
    while n > 0 && s[n - 1] == b'/' {
        n -= 1;
    }
    &s[..n]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::closure::Closure;
    use crate::environment::code_changing_variable;

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
        assert!(c.prefix_lengths().len() <= MAX_PREFIX_LENGTHS);
        assert!(c
            .exact
            .iter()
            .chain(&c.prefixes)
            .all(|(n, _)| n.len() <= MAX_NAME));
        // Spelled out: PYTHONUNBUFFERED is refused by no runtime, LD_PRELOAD (a prefix's) is
        // not spelled out.
        assert!(c
            .exact
            .iter()
            .any(|(n, m)| n == b"PYTHONUNBUFFERED" && *m == 0));
        assert!(!c.exact.iter().any(|(n, _)| n == b"LD_PRELOAD"));
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
