//! The configured name patterns compiled into literal pieces, for a matcher that compares
//! bytes (the kernel backend's program on a new entry's name): a pattern is at most two `*`
//! around at most three literals (`*.mrimg`, `*.tar*`, `disk-*.img`, `backup`), each of up to
//! [`MAX_PIECE`] bytes, compared with ASCII case folded as the policy's globs do. Any other
//! pattern (`?`, classes, alternatives, a `/`, more stars) is not compiled: a volume that needs
//! it stays with an enforcement point that asks [`crate::Rules`] itself.
//!
//! [`NamePatterns::matches`] is the model of that matcher; the tests prove it answers as
//! [`crate::Rules::matching_pattern`] does.

/// The longest literal piece of a compiled pattern.
pub const MAX_PIECE: usize = 32;
/// The most patterns a compiled set holds.
pub const MAX_PATTERNS: usize = 32;

/// One pattern as `head*middle*tail` (no star: `head` alone must be the whole name; one
/// star: `head*tail`), its literals lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    pub stars: u8,
    pub head: Vec<u8>,
    pub middle: Vec<u8>,
    pub tail: Vec<u8>,
}

/// Why a pattern set does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Uncompiled {
    #[error(
        "pattern {0:?} is more than `*` around literals (the kernel compares literal pieces only)"
    )]
    Shape(String),
    #[error("pattern {0:?} has a literal longer than {MAX_PIECE} bytes")]
    TooLong(String),
    #[error("more than {MAX_PATTERNS} patterns")]
    TooMany,
}

impl NamePattern {
    pub fn compile(pattern: &str) -> Result<NamePattern, Uncompiled> {
        let shape = || Uncompiled::Shape(pattern.to_string());
        if pattern
            .bytes()
            .any(|b| matches!(b, b'?' | b'[' | b']' | b'{' | b'}' | b'\\' | b'/' | b'!'))
            || pattern.contains("**")
        {
            return Err(shape());
        }
        let pieces: Vec<Vec<u8>> = pattern
            .split('*')
            .map(|p| p.bytes().map(|b| b.to_ascii_lowercase()).collect())
            .collect();
        if pieces.iter().any(|p| p.len() > MAX_PIECE) {
            return Err(Uncompiled::TooLong(pattern.to_string()));
        }
        let empty = Vec::new;
        match pieces.as_slice() {
            [whole] => Ok(NamePattern {
                stars: 0,
                head: whole.clone(),
                middle: empty(),
                tail: empty(),
            }),
            [head, tail] => Ok(NamePattern {
                stars: 1,
                head: head.clone(),
                middle: empty(),
                tail: tail.clone(),
            }),
            [head, middle, tail] => Ok(NamePattern {
                stars: 2,
                head: head.clone(),
                middle: middle.clone(),
                tail: tail.clone(),
            }),
            _ => Err(shape()),
        }
    }

    /// Whether `name` (a file name's bytes) matches, ASCII case folded.
    pub fn matches(&self, name: &[u8]) -> bool {
        let lower: Vec<u8> = name.iter().map(|b| b.to_ascii_lowercase()).collect();
        let (h, t) = (self.head.len(), self.tail.len());
        match self.stars {
            0 => lower == self.head,
            _ if lower.len() < h + t => false,
            _ if !lower.starts_with(&self.head) || !lower.ends_with(&self.tail) => false,
            1 => true,
            _ => {
                let between = &lower[h..lower.len() - t];
                self.middle.is_empty()
                    || between
                        .windows(self.middle.len())
                        .any(|w| w == self.middle.as_slice())
            }
        }
    }
}

/// A volume's patterns, compiled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamePatterns(pub Vec<NamePattern>);

impl NamePatterns {
    pub fn compile<P: AsRef<str>>(patterns: &[P]) -> Result<NamePatterns, Uncompiled> {
        if patterns.len() > MAX_PATTERNS {
            return Err(Uncompiled::TooMany);
        }
        patterns
            .iter()
            .map(|p| NamePattern::compile(p.as_ref()))
            .collect::<Result<_, _>>()
            .map(NamePatterns)
    }

    /// The index of the first pattern `name` matches.
    pub fn matches(&self, name: &[u8]) -> Option<usize> {
        self.0.iter().position(|p| p.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use proptest::prelude::*;

    use super::*;
    use crate::classify::{Rules, DEFAULT_PATTERNS};

    const PATTERNS: &[&str] = &[
        "*.mrimg",
        "*.tar*",
        "disk-*.img",
        "backup",
        "*",
        "*.vm*k",
        "nightly*",
        "*-full-*.tib",
    ];

    fn rules(patterns: &[&str]) -> Rules {
        Rules::new::<_, &[u8]>(patterns, &[], true, true).unwrap()
    }

    fn agree(patterns: &[&str], name: &[u8]) {
        let r = rules(patterns);
        let c = NamePatterns::compile(patterns).unwrap();
        let want = r
            .matching_pattern(OsStr::from_bytes(name))
            .map(|p| patterns.iter().position(|q| *q == p).unwrap());
        // Which pattern matched first may differ only where both match.
        assert_eq!(
            c.matches(name).is_some(),
            want.is_some(),
            "{patterns:?} on {:?}",
            String::from_utf8_lossy(name)
        );
    }

    #[test]
    fn the_defaults_compile() {
        let c = NamePatterns::compile(DEFAULT_PATTERNS).unwrap();
        assert_eq!(c.0.len(), DEFAULT_PATTERNS.len());
    }

    #[test]
    fn shapes_beyond_literal_pieces_do_not_compile() {
        for p in [
            "*.im?",
            "*.[ab]",
            "*.{a,b}",
            "dir/*.img",
            "*a*b*c",
            "**",
            "x\\*",
        ] {
            assert!(NamePattern::compile(p).is_err(), "{p}");
        }
        assert!(NamePattern::compile(&format!("*.{}", "x".repeat(40))).is_err());
    }

    #[test]
    fn names_that_are_easy_to_get_wrong() {
        let names: &[&[u8]] = &[
            b"a.mrimg",
            b"A.MRIMG",
            b".mrimg",
            b"mrimg",
            b"a.mrimg.part",
            b"a.tar",
            b"a.TAR.gz",
            b".tar",
            b"tar",
            b"x.tarball",
            b"disk-.img",
            b"disk-1.img",
            b"DISK-1.IMG",
            b"disk.img",
            b"backup",
            b"BACKUP",
            b"backups",
            b"a.vmk",
            b"a.vmdk",
            b"a.vk",
            b"nightly",
            b"nightly-1",
            b"x-full-.tib",
            b"x-full-1.tib",
            b"-full-.tib",
            "a.mrba\u{212A}".as_bytes(),
            "\u{17F}.tar".as_bytes(),
            b"\xff.mrimg",
            b"",
        ];
        for name in names {
            for p in PATTERNS {
                agree(&[p], name);
            }
            agree(DEFAULT_PATTERNS, name);
        }
    }

    proptest! {
        #[test]
        fn the_compiled_patterns_match_as_the_rules_do(
            name in proptest::collection::vec(
                prop_oneof![
                    Just(b'.'), Just(b'a'), Just(b'A'), Just(b't'), Just(b'r'), Just(b'm'),
                    Just(b'i'), Just(b'g'), Just(b'-'), Just(b'k'), Just(b'K'), Just(0xe2u8),
                    Just(0x84u8), Just(0xaau8), any::<u8>().prop_filter("a name", |b| *b != b'/' && *b != 0),
                ],
                0..24,
            ),
            which in 0..PATTERNS.len(),
        ) {
            agree(&[PATTERNS[which]], &name);
            agree(DEFAULT_PATTERNS, &name);
        }
    }
}
