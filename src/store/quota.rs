//! Quota limits (RFC 9208) as Dovecot's quota plugin writes them: the pure part — the
//! limits type, Dovecot's `quota_rule` syntax and sizes with units. Usage is kept by the
//! store (`maildir/quota.rs`, Maildir++ `maildirsize`).
//!
//! A rule is `<mailbox>:<resource>=<value>[:<resource>=<value>...]` (Dovecot's
//! `quota_rule`, `quota_rule2`, ... in the users file's extra fields, e.g.
//! `userdb_quota_rule=*:storage=1G`). Only the `*` rule (the whole user) is honoured.
//! Resources: `storage` (KiB without a unit), `bytes` (octets without a unit), `messages`;
//! units `B`, `K`, `M`, `G`, `T` (powers of 1024, either case); `N%` is that share of the
//! configured default; `0` is unlimited. A user's rules override the default resource by
//! resource.

/// Limits of one user; 0 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Octets as stored (the Maildir `S=` sizes), Dovecot's `bytes_limit`.
    pub bytes: u64,
    /// Messages in all of the user's folders.
    pub messages: u64,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.bytes == 0 && self.messages == 0
    }
}

/// What a user stores now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

/// Gives the limits of a user (the daemon builds one from the config and the users file).
pub trait QuotaLimits: Send + Sync + std::fmt::Debug {
    fn limits(&self, user: &str) -> Limits;
    /// What a save into `mailbox` is checked against, from one read of the user's rules:
    /// [`QuotaLimits::limits`], those limits changed by the user's rules for that mailbox
    /// (`quota_rule2=Trash:storage=+100M`), and the octets a delivery (LMTP, `deliver`) may
    /// take a user under the storage limit past it (Dovecot's `quota_grace`; 0 = none).
    fn save_limits(&self, user: &str, _mailbox: &str) -> (Limits, Limits, u64) {
        let l = self.limits(user);
        (l, l, 0)
    }
}

/// Dovecot's `quota_grace`: how far the last delivered message may take a user who is
/// under the storage limit past it, as a share of that limit (`10%`, the default) or a
/// size (`10M`; a bare number is octets, as Dovecot reads it). Only deliveries (LMTP,
/// `deliver`) get it, never APPEND or COPY, and never the message-count limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    Percent(u64),
    Bytes(u64),
}

impl Default for Grace {
    fn default() -> Grace {
        Grace::Percent(10)
    }
}

impl Grace {
    /// The grace in octets for a storage limit of `limit` octets (0 when unlimited).
    pub fn bytes(self, limit: u64) -> u64 {
        match self {
            _ if limit == 0 => 0,
            Grace::Percent(p) => limit.saturating_mul(p) / 100,
            Grace::Bytes(b) => b,
        }
    }

    /// The text [`parse_grace`] reads back.
    pub fn text(self) -> String {
        match self {
            Grace::Percent(p) => format!("{p}%"),
            Grace::Bytes(b) => b.to_string(),
        }
    }
}

/// Parses a `quota_grace` value: `N%` or a size ([`parse_size`], octets without a unit).
pub fn parse_grace(text: &str) -> Result<Grace, String> {
    let t = text.trim();
    match t.strip_suffix('%') {
        Some(p) => p
            .trim()
            .parse()
            .map(Grace::Percent)
            .map_err(|_| format!("{text:?} is not a percentage (e.g. 10%)")),
        None => parse_size(t, 1).map(Grace::Bytes),
    }
}

/// The grace of a user whose extra fields are `fields`: the last `quota_grace` (with or
/// without `userdb_`), else `default`; a value that does not parse is a warning.
pub fn user_grace<'a>(default: Grace, fields: impl IntoIterator<Item = &'a str>) -> (Grace, Vec<String>) {
    let mut grace = default;
    let mut warnings = Vec::new();
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        if key.strip_prefix("userdb_").unwrap_or(key) != "quota_grace" {
            continue;
        }
        match parse_grace(value) {
            Ok(g) => grace = g,
            Err(e) => warnings.push(format!("quota_grace: {e}; ignored")),
        }
    }
    (grace, warnings)
}

/// Whether a delivery of `bytes` octets (one message) fits: as Dovecot's
/// `quota_transaction_set_limits` for LDA/LMTP, a user at or over the storage limit gets
/// nothing, a user under it may go past it by at most `grace` octets; the message limit
/// has no grace.
pub fn delivery_fits(limits: Limits, u: Usage, grace: u64, bytes: u64) -> bool {
    let storage = limits.bytes == 0
        || (u.bytes < limits.bytes && bytes <= (limits.bytes - u.bytes).saturating_add(grace));
    let messages = limits.messages == 0 || u.messages.saturating_add(1) <= limits.messages;
    storage && messages
}

/// Parses a size with an optional unit (`1G`, `500k`, `100M`, `2048B`); a number without a
/// unit is multiplied by `default_unit`.
pub fn parse_size(text: &str, default_unit: u64) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 1G, 500M, 1024K)"))?;
    let mult = match unit {
        "" => default_unit,
        "b" | "B" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        "t" | "T" => 1 << 40,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (B, K, M, G or T)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Applies one Dovecot `quota_rule` value to `limits`; `default` is what `N%` refers to.
/// `Ok(false)` for a rule of another mailbox than `*` (see [`mailbox_limits`]).
pub fn apply_rule(limits: &mut Limits, rule: &str, default: Limits) -> Result<bool, String> {
    let mut parts = rule.split(':');
    let mailbox = parts.next().unwrap_or_default();
    if mailbox != "*" {
        return Ok(false);
    }
    let mut next = *limits;
    for part in parts {
        let part = part.trim();
        if part.is_empty() || part.eq_ignore_ascii_case("noenforcing") {
            continue;
        }
        if part.eq_ignore_ascii_case("ignore") || part.eq_ignore_ascii_case("none") {
            next = Limits::default();
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            return Err(format!("quota rule {rule:?}: {part:?} is not resource=value"));
        };
        let (slot, base, unit) = match key.to_ascii_lowercase().as_str() {
            "storage" => (&mut next.bytes, default.bytes, 1024),
            "bytes" => (&mut next.bytes, default.bytes, 1),
            "messages" => (&mut next.messages, default.messages, 1),
            _ => return Err(format!("quota rule {rule:?}: unknown resource {key:?}")),
        };
        *slot = match value.strip_suffix('%') {
            Some(p) => {
                let p: u64 = p
                    .parse()
                    .map_err(|_| format!("quota rule {rule:?}: bad percentage {value:?}"))?;
                base.saturating_mul(p) / 100
            }
            None if value.starts_with(['+', '-']) => {
                return Err(format!(
                    "quota rule {rule:?}: relative values ({value}) are not supported"
                ))
            }
            None => parse_size(value, unit).map_err(|e| format!("quota rule {rule:?}: {e}"))?,
        };
    }
    *limits = next;
    Ok(true)
}

/// The values of the `quota_rule`, `quota_rule2`, ... fields (with or without `userdb_`),
/// in field order.
fn quota_rules<'a>(fields: impl IntoIterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    fields.into_iter().filter_map(|field| {
        let (key, value) = field.split_once('=')?;
        let n = key.strip_prefix("userdb_").unwrap_or(key).strip_prefix("quota_rule")?;
        n.chars().all(|c| c.is_ascii_digit()).then_some(value)
    })
}

/// Dovecot's `wildcard_match`: `*` any run, `?` any one character; INBOX in any case.
fn mailbox_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    if pattern.eq_ignore_ascii_case("INBOX") && name.eq_ignore_ascii_case("INBOX") {
        return true;
    }
    let p: Vec<char> = pattern.chars().take(256).collect();
    let n: Vec<char> = name.chars().take(1024).collect();
    // Bounded: at most a few `*` in a real rule; more are refused rather than searched.
    p.iter().filter(|&&c| c == '*').count() <= 4 && go(&p, &n)
}

/// The limits for a save into `mailbox` of a user whose `*` limits are `base` and whose
/// extra fields are `fields`: every `quota_rule` naming that mailbox (Dovecot's wildcards
/// `*` and `?`; not the `*` rule itself), in field order, changes them: `+N`/`-N` relative
/// to `base`, a plain value replaces it, `ignore` lifts the limits for saves there. (Dovecot
/// also leaves an ignored mailbox's messages out of the usage; here they still count.)
pub fn mailbox_limits<'a>(
    base: Limits,
    fields: impl IntoIterator<Item = &'a str>,
    mailbox: &str,
) -> Limits {
    let mut limits = base;
    for rule in quota_rules(fields) {
        let mut parts = rule.split(':');
        let pattern = parts.next().unwrap_or_default();
        if pattern == "*" || !mailbox_matches(pattern, mailbox) {
            continue;
        }
        for part in parts.map(str::trim) {
            if part.eq_ignore_ascii_case("ignore") || part.eq_ignore_ascii_case("none") {
                limits = Limits::default();
                continue;
            }
            let Some((resource, value)) = part.split_once('=') else {
                continue;
            };
            let (slot, base_value, unit) = match resource.to_ascii_lowercase().as_str() {
                "storage" => (&mut limits.bytes, base.bytes, 1024),
                "bytes" => (&mut limits.bytes, base.bytes, 1),
                "messages" => (&mut limits.messages, base.messages, 1),
                _ => continue,
            };
            let (sign, digits) = match value.as_bytes().first() {
                Some(b'+') => (1, &value[1..]),
                Some(b'-') => (-1, &value[1..]),
                _ => (0, value),
            };
            let Ok(n) = parse_size(digits, unit) else {
                continue;
            };
            *slot = match sign {
                // Relative to an unlimited `*` stays unlimited, as Dovecot.
                _ if sign != 0 && base_value == 0 => 0,
                1 => base_value.saturating_add(n),
                -1 => base_value.saturating_sub(n).max(1),
                _ => n,
            };
        }
    }
    limits
}

/// The limits of a user whose extra fields (`key=value`, as in the users file) are
/// `fields`: the default, changed by every `quota_rule`, `quota_rule2`, ... (with or without
/// `userdb_`) in field order. Returns the warnings for rules that were skipped.
pub fn user_limits<'a>(
    default: Limits,
    fields: impl IntoIterator<Item = &'a str>,
) -> (Limits, Vec<String>) {
    let mut limits = default;
    let mut warnings = Vec::new();
    for value in quota_rules(fields) {
        match apply_rule(&mut limits, value, default) {
            // Another mailbox's rule: applied by `mailbox_limits` to saves there.
            Ok(_) => {}
            Err(e) => warnings.push(format!("{e}; ignored")),
        }
    }
    (limits, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G", 1024), Ok(1 << 30));
        assert_eq!(parse_size("100", 1024), Ok(102_400));
        assert_eq!(parse_size("100", 1), Ok(100));
        assert_eq!(parse_size("5m", 1), Ok(5 << 20));
        assert_eq!(parse_size("7B", 1024), Ok(7));
        assert_eq!(parse_size("2T", 1), Ok(2 << 40));
        assert!(parse_size("1X", 1).is_err());
        assert!(parse_size("G", 1).is_err());
        assert!(parse_size("99999999999999999999T", 1).is_err());
    }

    #[test]
    fn mailbox_rules_as_dovecots_trash_example() {
        let base = Limits {
            bytes: 1 << 30,
            messages: 1000,
        };
        let fields = [
            "quota_rule=*:storage=1G",
            "quota_rule2=Trash:storage=+100M",
            "userdb_quota_rule3=Arch*:messages=-100:bytes=2048",
            "quota_rule4=Spam:ignore",
            "quota_rule5=Tr?sh:messages=5000",
        ];
        let at = |m: &str| mailbox_limits(base, fields, m);
        assert_eq!(at("INBOX"), base);
        assert_eq!(at("Trash").bytes, (1 << 30) + (100 << 20));
        assert_eq!(at("Trash").messages, 5000, "later rules apply too");
        assert_eq!(at("Archive/2026"), Limits { bytes: 2048, messages: 900 });
        assert!(at("Spam").is_unlimited());
        assert_eq!(at("trash"), base, "case matters except for INBOX");
        let unlimited = mailbox_limits(Limits::default(), fields, "Trash");
        assert_eq!(unlimited.bytes, 0, "relative to unlimited stays unlimited");
        let (l, w) = user_limits(base, fields);
        assert_eq!((l.bytes, w.len()), (1 << 30, 0), "other mailboxes' rules are no warning");
        assert!(mailbox_matches("INBOX", "inbox") && mailbox_matches("a*b*c", "a-b-c"));
        assert!(!mailbox_matches("*a*a*a*a*a", "aaaaaaaaaa"), "too many stars: no match");
    }

    #[test]
    fn grace_as_dovecot_reads_it() {
        assert_eq!(parse_grace("10%"), Ok(Grace::Percent(10)));
        assert_eq!(parse_grace(" 0 "), Ok(Grace::Bytes(0)));
        assert_eq!(parse_grace("10M"), Ok(Grace::Bytes(10 << 20)));
        assert_eq!(parse_grace("2048"), Ok(Grace::Bytes(2048)));
        assert!(parse_grace("x%").is_err() && parse_grace("1Q").is_err());
        assert_eq!(Grace::Percent(10).bytes(1_000_000), 100_000);
        assert_eq!(Grace::Bytes(5).bytes(0), 0, "no limit, no grace");
        for g in [Grace::Percent(15), Grace::Bytes(123)] {
            assert_eq!(parse_grace(&g.text()), Ok(g));
        }
        let (g, w) = user_grace(Grace::default(), ["userdb_quota_grace=1K", "quota_grace=bad"]);
        assert_eq!((g, w.len()), (Grace::Bytes(1024), 1));
        assert_eq!(user_grace(Grace::Bytes(7), ["x=y"]).0, Grace::Bytes(7));
    }

    #[test]
    fn a_delivery_may_overshoot_by_the_grace_only_from_under_the_limit() {
        let l = Limits {
            bytes: 10_000,
            messages: 5,
        };
        let u = |bytes, messages| Usage { bytes, messages };
        assert!(delivery_fits(l, u(6_000, 1), 1_000, 5_000));
        assert!(!delivery_fits(l, u(6_000, 1), 1_000, 5_001));
        assert!(!delivery_fits(l, u(6_000, 1), 0, 4_001));
        assert!(!delivery_fits(l, u(10_000, 1), 1_000, 1), "at the limit: nothing");
        assert!(!delivery_fits(l, u(0, 5), 1_000, 1), "no grace on messages");
        assert!(delivery_fits(Limits::default(), u(u64::MAX, 0), 0, u64::MAX));
    }

    #[test]
    fn rules_as_dovecot_writes_them() {
        let d = Limits {
            bytes: 1000,
            messages: 10,
        };
        let (l, w) = user_limits(d, ["userdb_quota_rule=*:storage=1G", "x=y"]);
        assert_eq!((l.bytes, l.messages, w.len()), (1 << 30, 10, 0));
        let (l, _) = user_limits(
            d,
            ["quota_rule=*:storage=2M", "userdb_quota_rule2=*:messages=1000"],
        );
        assert_eq!((l.bytes, l.messages), (2 << 20, 1000));
        let (l, _) = user_limits(d, ["quota_rule=*:storage=50%:messages=0"]);
        assert_eq!((l.bytes, l.messages), (500, 0));
        let (l, _) = user_limits(d, ["quota_rule=*:bytes=300"]);
        assert_eq!(l.bytes, 300);
        let (l, w) = user_limits(d, ["quota_rule=Trash:storage=+10M", "quota_rule=*:x=1"]);
        assert_eq!((l, w.len()), (d, 1), "only the bad resource is a warning");
        let (l, _) = user_limits(d, ["quota_rule=*:ignore"]);
        assert!(l.is_unlimited());
    }
}
