//! Reading a definition file with the limits every parser relies on: at most 10 MiB (a larger
//! file is not a backup definition, and would cost memory and time), any bytes (invalid UTF-8
//! is replaced, and said), and nesting bounded before a structured parser sees the text.

use std::io::Read;
use std::path::Path;

use crate::Problem;

/// The largest definition file read.
pub const MAX_BYTES: u64 = 10 << 20;

/// Deepest nesting of brackets or indentation accepted in structured (YAML, JSON) text.
pub const MAX_DEPTH: usize = 64;

/// The text of `path`, or the problem that kept it from being read. Invalid UTF-8 is replaced
/// and reported as a problem alongside the text.
pub fn read(path: &Path) -> Result<(String, Option<Problem>), Problem> {
    let f = std::fs::File::open(path).map_err(|e| Problem::new(path, None, e.to_string()))?;
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Problem::new(path, None, e.to_string()))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Problem::new(
            path,
            None,
            format!("larger than {} MiB: not read", MAX_BYTES >> 20),
        ));
    }
    Ok(decode(path, &bytes))
}

/// Bytes as text: invalid UTF-8 replaced, and said (with the line of the first bad byte).
pub fn decode(path: &Path, bytes: &[u8]) -> (String, Option<Problem>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), None),
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            (
                String::from_utf8_lossy(bytes).into_owned(),
                Some(Problem::new(path, Some(line), "invalid UTF-8 (replaced)")),
            )
        }
    }
}

/// The line (1-based) where nesting first goes deeper than [`MAX_DEPTH`], counting flow
/// brackets and indentation (two spaces a level), if it does.
pub fn too_deep(text: &str) -> Option<usize> {
    let mut depth: usize = 0;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        for c in line.chars() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_DEPTH {
                return Some(i + 1);
            }
        }
        if indent / 2 > MAX_DEPTH {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'a'; (MAX_BYTES + 1) as usize]).unwrap();
        assert!(read(&big)
            .unwrap_err()
            .message
            .contains("larger than 10 MiB"));
        let bad = d.path().join("bad");
        std::fs::write(&bad, b"ok\nstill ok\n\xff\xfe\n").unwrap();
        let (text, problem) = read(&bad).unwrap();
        assert!(text.starts_with("ok\n"));
        assert_eq!(problem.unwrap().line, Some(3));
        assert!(read(&d.path().join("missing")).is_err());
        assert_eq!(too_deep(&"[".repeat(65)), Some(1));
        assert_eq!(too_deep(&"[".repeat(64)), None);
        assert_eq!(too_deep(&format!("a:\n{}b: 1\n", " ".repeat(200))), Some(2));
    }
}
