//! `dovecot-keywords` (Dovecot `maildir-keywords.c`): one `<index> <name>` line per keyword;
//! index n is the letter `a`+n in the `:2,` info. At most 26 keywords fit in file names.
//! Indexes never change once written; new names are appended under the file's dot-lock.

use std::fmt::Write as _;

/// Maximum keywords a Maildir file name can carry (`a`..`z`).
pub const MAX_KEYWORDS: usize = 26;

/// Index → name (`None` for gaps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    pub names: Vec<Option<String>>,
}

impl Keywords {
    pub fn parse(text: &str) -> Keywords {
        let mut names: Vec<Option<String>> = Vec::new();
        for line in text.lines() {
            let Some((idx, name)) = line.split_once(' ') else {
                continue;
            };
            let Ok(idx) = idx.parse::<usize>() else {
                continue;
            };
            if idx >= MAX_KEYWORDS || name.is_empty() {
                continue;
            }
            if names.len() <= idx {
                names.resize(idx + 1, None);
            }
            names[idx] = Some(name.to_string());
        }
        Keywords { names }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.names.iter().enumerate() {
            if let Some(n) = n {
                let _ = writeln!(out, "{i} {n}");
            }
        }
        out
    }

    /// Index of `name` (keywords compare case-insensitively, RFC 3501 §2.3.2).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }

    /// Adds `name` at the first free index; `None` when all 26 are used.
    pub fn add(&mut self, name: &str) -> Option<usize> {
        if let Some(i) = self.index_of(name) {
            return Some(i);
        }
        let i = match self.names.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.names.len() < MAX_KEYWORDS => {
                self.names.push(None);
                self.names.len() - 1
            }
            None => return None,
        };
        self.names[i] = Some(name.to_string());
        Some(i)
    }

    /// Names for a bit set, in index order.
    pub fn names_of(&self, bits: u32) -> Vec<String> {
        (0..self.names.len())
            .filter(|i| bits & (1 << i) != 0)
            .filter_map(|i| self.names[i].clone())
            .collect()
    }

    /// Bit set for names already known; unknown names are returned separately.
    pub fn bits_of<'a>(&self, names: &'a [String]) -> (u32, Vec<&'a str>) {
        let mut bits = 0;
        let mut missing = Vec::new();
        for n in names {
            match self.index_of(n) {
                Some(i) => bits |= 1 << i,
                None => missing.push(n.as_str()),
            }
        }
        (bits, missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dovecot_file_and_round_trips() {
        let k = Keywords::parse("0 $Forwarded\n1 Junk\n2 foo\n");
        assert_eq!(k.index_of("junk"), Some(1));
        assert_eq!(k.names_of(0b101), vec!["$Forwarded", "foo"]);
        assert_eq!(k.render(), "0 $Forwarded\n1 Junk\n2 foo\n");
        let names = ["foo".to_string(), "bar".to_string()];
        let (bits, missing) = k.bits_of(&names);
        assert_eq!((bits, missing), (0b100, vec!["bar"]));
    }

    #[test]
    fn gaps_and_limit() {
        let mut k = Keywords::parse("1 b\nx y\n30 z\n");
        assert_eq!(k.add("a"), Some(0));
        assert_eq!(k.render(), "0 a\n1 b\n");
        for i in 2..26 {
            assert_eq!(k.add(&format!("k{i}")), Some(i));
        }
        assert_eq!(k.add("overflow"), None);
        assert_eq!(k.add("K5"), Some(5));
    }
}
