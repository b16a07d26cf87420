//! RFC 5322 §3.4 address lists, parsed leniently as Dovecot parses them
//! (`message-address.c`): groups, routes, placeholders for missing pieces.

use crate::mime::lexer::{Lexer, Tok};

/// One ENVELOPE address: (name adl mailbox host); group start is (NIL NIL name NIL), group end
/// (NIL NIL NIL NIL) (RFC 3501 §7.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub name: Option<Vec<u8>>,
    pub adl: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
}

const ADDR_SPECIALS: &[u8] = b"<>@,;:.[]\\";

/// Parses an RFC 5322 address list leniently (Dovecot-style placeholders `MISSING_MAILBOX` /
/// `MISSING_DOMAIN` for missing pieces). Encoded words are kept as they are.
pub fn parse_addresses(value: &[u8]) -> Vec<Address> {
    let mut lx = Lexer::new(value);
    let mut toks = Vec::new();
    while let Some(t) = lx.next(ADDR_SPECIALS) {
        toks.push(t);
    }
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_group = false;
    while i < toks.len() {
        let start = i;
        // Phrase (display name or local part) up to a special that decides.
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut comment: Option<Vec<u8>> = None;
        let mut local = Vec::new();
        let mut decided = None;
        while i < toks.len() {
            match &toks[i] {
                Tok::Atom(a) | Tok::Quoted(a) => {
                    words.push(a.clone());
                    local.extend_from_slice(a);
                }
                Tok::Special(b'.') => {
                    words.push(b".".to_vec());
                    local.push(b'.');
                }
                Tok::Comment(c) => comment = Some(c.clone()),
                Tok::Special(c) => {
                    decided = Some(*c);
                    break;
                }
                Tok::Literal(l) => words.push(l.clone()),
            }
            i += 1;
        }
        let name = join_phrase(&words);
        match decided {
            Some(b':') if !in_group => {
                i += 1;
                in_group = true;
                out.push(Address {
                    name: None,
                    adl: None,
                    mailbox: Some(name.unwrap_or_default()),
                    host: None,
                });
            }
            Some(b'<') => {
                i += 1;
                let (adl, mailbox, host, ni) = parse_angle(&toks, i);
                i = ni;
                // Trailing comments after '>' are ignored.
                out.push(Address {
                    name,
                    adl,
                    mailbox: Some(mailbox.unwrap_or_else(|| b"MISSING_MAILBOX".to_vec())),
                    host: Some(host.unwrap_or_else(|| b"MISSING_DOMAIN".to_vec())),
                });
                skip_to_separator(&toks, &mut i);
            }
            Some(b'@') => {
                i += 1;
                let (host, ni) = parse_domain(&toks, i);
                i = ni;
                let mut c = None;
                while i < toks.len() {
                    match &toks[i] {
                        Tok::Comment(x) => c = Some(x.clone()),
                        Tok::Special(b',' | b';') => break,
                        _ => {}
                    }
                    i += 1;
                }
                out.push(Address {
                    name: c.or(comment).filter(|c| !c.is_empty()),
                    adl: None,
                    mailbox: Some(if local.is_empty() {
                        b"MISSING_MAILBOX".to_vec()
                    } else {
                        local
                    }),
                    host: Some(host.unwrap_or_else(|| b"MISSING_DOMAIN".to_vec())),
                });
            }
            _ => {
                if !local.is_empty() {
                    out.push(Address {
                        name: comment.filter(|c| !c.is_empty()),
                        adl: None,
                        mailbox: Some(local),
                        host: Some(b"MISSING_DOMAIN".to_vec()),
                    });
                }
            }
        }
        // Separators.
        while i < toks.len() {
            match toks[i] {
                Tok::Special(b',') => {
                    i += 1;
                    // An empty element (`a, , b`): Dovecot lists a placeholder address.
                    if toks.get(i) == Some(&Tok::Special(b',')) {
                        out.push(Address {
                            name: None,
                            adl: None,
                            mailbox: Some(b"MISSING_MAILBOX".to_vec()),
                            host: Some(b"MISSING_DOMAIN".to_vec()),
                        });
                    }
                }
                Tok::Special(b';') => {
                    i += 1;
                    if in_group {
                        in_group = false;
                        out.push(Address {
                            name: None,
                            adl: None,
                            mailbox: None,
                            host: None,
                        });
                    }
                }
                Tok::Special(b':') if in_group => i += 1,
                Tok::Special(b'>') | Tok::Special(b'\\') => i += 1,
                _ => break,
            }
        }
        // A special no branch above takes (a stray `[` or `]`) ends the list, as in Dovecot;
        // every round consumes a token or stops (found by the `mime` fuzz target: `To: a]b`
        // looped forever).
        if i == start {
            break;
        }
    }
    if in_group {
        out.push(Address {
            name: None,
            adl: None,
            mailbox: None,
            host: None,
        });
    }
    out
}

fn skip_to_separator(toks: &[Tok], i: &mut usize) {
    while *i < toks.len() && !matches!(toks[*i], Tok::Special(b',' | b';')) {
        *i += 1;
    }
}

fn join_phrase(words: &[Vec<u8>]) -> Option<Vec<u8>> {
    if words.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for (k, w) in words.iter().enumerate() {
        if k > 0 && w != b"." && words[k - 1] != b"." {
            out.push(b' ');
        }
        out.extend_from_slice(w);
    }
    Some(out)
}

type Angle = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>, usize);

/// Inside `<...>`: optional route `@a,@b:`, then local@domain, up to `>`.
fn parse_angle(toks: &[Tok], mut i: usize) -> Angle {
    let mut adl = None;
    if toks.get(i) == Some(&Tok::Special(b'@')) {
        let mut route = Vec::new();
        while i < toks.len() && toks[i] != Tok::Special(b':') && toks[i] != Tok::Special(b'>') {
            match &toks[i] {
                Tok::Atom(a) => route.extend_from_slice(a),
                Tok::Special(c) => route.push(*c),
                Tok::Literal(l) => route.extend_from_slice(l),
                _ => {}
            }
            i += 1;
        }
        if toks.get(i) == Some(&Tok::Special(b':')) {
            i += 1;
        }
        adl = Some(route);
    }
    let mut local = Vec::new();
    while i < toks.len() {
        match &toks[i] {
            Tok::Atom(a) => local.extend_from_slice(a),
            Tok::Quoted(q) => {
                local.push(b'"');
                local.extend_from_slice(q);
                local.push(b'"');
            }
            Tok::Special(b'.') => local.push(b'.'),
            Tok::Special(_) => break,
            _ => {}
        }
        i += 1;
    }
    let mut host = None;
    if toks.get(i) == Some(&Tok::Special(b'@')) {
        let (h, ni) = parse_domain(toks, i + 1);
        host = h;
        i = ni;
    }
    while i < toks.len() && toks[i] != Tok::Special(b'>') {
        i += 1;
    }
    if i < toks.len() {
        i += 1;
    }
    let mailbox = if local.is_empty() { None } else { Some(local) };
    (adl, mailbox, host, i)
}

fn parse_domain(toks: &[Tok], mut i: usize) -> (Option<Vec<u8>>, usize) {
    let mut d = Vec::new();
    while i < toks.len() {
        match &toks[i] {
            Tok::Atom(a) => d.extend_from_slice(a),
            Tok::Literal(l) => d.extend_from_slice(l),
            Tok::Special(b'.') => d.push(b'.'),
            _ => break,
        }
        i += 1;
    }
    ((!d.is_empty()).then_some(d), i)
}

#[cfg(test)]
mod tests {
    use crate::mime::address::*;

    /// A stray `[` or `]` used to loop forever (found by the `mime` fuzz target); it ends
    /// the list, as in Dovecot (`tests/imap_mime_dovecot.rs`, "stray-brackets").
    #[test]
    fn stray_brackets_end_the_list() {
        let mailboxes = |v: &[u8]| -> Vec<Option<Vec<u8>>> {
            parse_addresses(v).into_iter().map(|a| a.mailbox).collect()
        };
        assert_eq!(mailboxes(b"a]b@example.org"), [Some(b"a".to_vec())]);
        assert_eq!(mailboxes(b"x, y]w"), [Some(b"x".to_vec()), Some(b"y".to_vec())]);
        assert_eq!(mailboxes(b"]"), Vec::<Option<Vec<u8>>>::new());
        assert_eq!(mailboxes(b"["), Vec::<Option<Vec<u8>>>::new());
        assert_eq!(
            mailboxes(b"g: a]b;"),
            [Some(b"g".to_vec()), Some(b"a".to_vec()), None]
        );
    }

    #[test]
    fn addresses_and_groups() {
        let a = parse_addresses(b"\"Doe, John\" <j@d.com>, undisclosed:;, Team: x@y, \"Q\" <q@z>; , =?utf-8?q?J=C3=B6rg?= <jo@rg>");
        let names: Vec<_> = a
            .iter()
            .map(|a| {
                (
                    a.name.clone().map(|v| String::from_utf8(v).unwrap()),
                    a.mailbox.clone().map(|v| String::from_utf8(v).unwrap()),
                    a.host.clone().map(|v| String::from_utf8(v).unwrap()),
                )
            })
            .collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            names,
            vec![
                (s("Doe, John"), s("j"), s("d.com")),
                (None, s("undisclosed"), None),
                (None, None, None),
                (None, s("Team"), None),
                (None, s("x"), s("y")),
                (s("Q"), s("q"), s("z")),
                (None, None, None),
                (s("=?utf-8?q?J=C3=B6rg?="), s("jo"), s("rg")),
            ]
        );
        let a = parse_addresses(b"a@b (Comment Name)");
        assert_eq!(a[0].name.as_deref(), Some(&b"Comment Name"[..]));
        let a = parse_addresses(b"<@r1,@r2:u@h>");
        assert_eq!(a[0].adl.as_deref(), Some(&b"@r1,@r2"[..]));
    }
}
