//! THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES, and Dovecot's REFS
//! (draft-ietf-morg-inthread: REFERENCES without the subject merge, threads ordered by their
//! latest message). Pure: the messages a search found, in mailbox order, in; the thread tree
//! and its `* THREAD` text out.

use std::collections::HashMap;

/// One message to thread.
#[derive(Debug, Clone, Default)]
pub struct ThreadMsg {
    /// What the response names it by (sequence number or UID); mailbox order ascending.
    pub id: u32,
    /// The sent date (INTERNALDATE when `Date:` is missing or bad), seconds.
    pub date: i64,
    /// Base subject (case-mapped) and whether it was a reply/forward (§2.1).
    pub subject: String,
    pub reply: bool,
    pub message_id: Option<String>,
    pub references: Vec<String>,
}

/// A thread node: a message (index into the input) or a dummy, with its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub msg: Option<u32>,
    pub children: Vec<Node>,
}

/// The algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    OrderedSubject,
    References,
    Refs,
}

/// Threads `msgs` (mailbox order) with `alg`; the root nodes in response order.
pub fn thread(msgs: &[ThreadMsg], alg: Algorithm) -> Vec<Node> {
    match alg {
        Algorithm::OrderedSubject => ordered_subject(msgs),
        Algorithm::References => references(msgs, true),
        Algorithm::Refs => references(msgs, false),
    }
}

/// §3 ORDEREDSUBJECT: messages sorted by (base subject, sent date); each run of one subject
/// is a thread whose first message is the parent of the others; threads by their first
/// message's date.
fn ordered_subject(msgs: &[ThreadMsg]) -> Vec<Node> {
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by(|&a, &b| {
        msgs[a]
            .subject
            .cmp(&msgs[b].subject)
            .then(msgs[a].date.cmp(&msgs[b].date))
            .then(a.cmp(&b))
    });
    let mut roots: Vec<(usize, Node)> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let first = order[i];
        let mut j = i + 1;
        let mut children = Vec::new();
        while j < order.len() && msgs[order[j]].subject == msgs[first].subject {
            children.push(Node {
                msg: Some(msgs[order[j]].id),
                children: Vec::new(),
            });
            j += 1;
        }
        roots.push((
            first,
            Node {
                msg: Some(msgs[first].id),
                children,
            },
        ));
        i = j;
    }
    roots.sort_by(|(a, _), (b, _)| msgs[*a].date.cmp(&msgs[*b].date).then(a.cmp(b)));
    roots.into_iter().map(|(_, n)| n).collect()
}

/// A container of §3 REFERENCES step 1.
#[derive(Debug, Clone, Default)]
struct Container {
    /// Index into the input; `None` for a dummy.
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Arena {
    c: Vec<Container>,
}

impl Arena {
    fn new_container(&mut self, msg: Option<usize>) -> usize {
        self.c.push(Container {
            msg,
            ..Container::default()
        });
        self.c.len() - 1
    }

    /// Whether `a` is `b` or one of `b`'s ancestors... i.e. whether `b` is under `a`.
    fn is_under(&self, b: usize, a: usize) -> bool {
        let mut at = Some(b);
        let mut steps = 0usize;
        while let Some(x) = at {
            if x == a {
                return true;
            }
            steps += 1;
            if steps > self.c.len() {
                return true;
            }
            at = self.c[x].parent;
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.c[child].parent.take() {
            self.c[p].children.retain(|&x| x != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.c[child].parent = Some(parent);
        self.c[parent].children.push(child);
    }
}

/// §3 REFERENCES (with `merge_subjects`), or REFS (without it, threads by latest date).
fn references(msgs: &[ThreadMsg], merge_subjects: bool) -> Vec<Node> {
    let mut a = Arena { c: Vec::new() };
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        // (1A) The message's container: a dummy made by an earlier reference, or a new one
        // (a duplicate Message-ID gets a container of its own, as if it had none).
        let me = match m.message_id.as_deref() {
            Some(id) => match ids.get(id) {
                Some(&c) if a.c[c].msg.is_none() => {
                    a.c[c].msg = Some(i);
                    c
                }
                Some(_) => a.new_container(Some(i)),
                None => {
                    let c = a.new_container(Some(i));
                    ids.insert(id, c);
                    c
                }
            },
            None => a.new_container(Some(i)),
        };
        // (1B) Link the references in order, never changing a link or making a loop.
        let mut prev: Option<usize> = None;
        for r in &m.references {
            let c = match ids.get(r.as_str()) {
                Some(&c) => c,
                None => {
                    let c = a.new_container(None);
                    ids.insert(r.as_str(), c);
                    c
                }
            };
            if let Some(p) = prev {
                if a.c[c].parent.is_none() && !a.is_under(p, c) {
                    a.link(p, c);
                }
            }
            prev = Some(c);
        }
        // (1C) The last reference is the message's parent (replacing a parent it had),
        // unless that makes a loop.
        match prev {
            Some(p) if !a.is_under(p, me) => a.link(p, me),
            Some(_) => {}
            None => a.unlink(me),
        }
    }
    // (2) The root set.
    let roots: Vec<usize> = (0..a.c.len()).filter(|&c| a.c[c].parent.is_none()).collect();
    // (4) Prune dummies.
    let mut roots = prune(&mut a, &roots, true);
    // Children first sorted (so a dummy's first child is known), then the subject merge.
    let date = |a: &Arena, c: usize| -> (i64, usize) { sort_date(a, msgs, c) };
    if merge_subjects {
        for &r in &roots {
            sort_tree(&mut a, msgs, r);
        }
        roots = merge_by_subject(&mut a, msgs, roots);
    }
    for &r in &roots {
        sort_tree(&mut a, msgs, r);
    }
    if merge_subjects {
        roots.sort_by_key(|&r| date(&a, r));
    } else {
        // Ties (same latest date) in the order of the threads' first messages.
        roots.sort_by_key(|&r| (latest(&a, msgs, r).0, date(&a, r).1));
    }
    roots.iter().map(|&r| to_node(&a, msgs, r)).collect()
}

/// (4) Prunes dummies under `list` (recursively): a dummy without children goes; a
/// dummy's children take its place, except at the root when it has more than one.
fn prune(a: &mut Arena, list: &[usize], root: bool) -> Vec<usize> {
    let mut out = Vec::new();
    for &c in list {
        let kids = a.c[c].children.clone();
        let kids = prune(a, &kids, false);
        a.c[c].children = kids.clone();
        for &k in &kids {
            a.c[k].parent = Some(c);
        }
        if a.c[c].msg.is_some() {
            out.push(c);
        } else if kids.is_empty() {
        } else if !root || kids.len() == 1 {
            for &k in &kids {
                a.c[k].parent = if root { None } else { a.c[c].parent };
            }
            out.extend(kids);
        } else {
            out.push(c);
        }
    }
    out
}

/// (6) The date a container sorts by: its message's, or its first child's (children
/// sorted first); ties in mailbox order.
fn sort_date(a: &Arena, msgs: &[ThreadMsg], c: usize) -> (i64, usize) {
    let mut at = c;
    let mut steps = 0;
    loop {
        if let Some(m) = a.c[at].msg {
            return (msgs[m].date, m);
        }
        match a.c[at].children.first() {
            Some(&k) if steps < a.c.len() => at = k,
            _ => return (i64::MAX, usize::MAX),
        }
        steps += 1;
    }
}

/// REFS: the latest date in the thread (and that message's mailbox position).
fn latest(a: &Arena, msgs: &[ThreadMsg], c: usize) -> (i64, usize) {
    let mut best = (i64::MIN, 0usize);
    let mut stack = vec![c];
    while let Some(x) = stack.pop() {
        if let Some(m) = a.c[x].msg {
            best = best.max((msgs[m].date, m));
        }
        stack.extend(a.c[x].children.iter().copied());
    }
    best
}

fn sort_tree(a: &mut Arena, msgs: &[ThreadMsg], c: usize) {
    let kids = a.c[c].children.clone();
    for &k in &kids {
        sort_tree(a, msgs, k);
    }
    let mut kids = kids;
    kids.sort_by_key(|&k| sort_date(a, msgs, k));
    a.c[c].children = kids;
}

/// The subject a root is merged by: its message's, or its first child's for a dummy.
fn root_subject<'m>(a: &Arena, msgs: &'m [ThreadMsg], c: usize) -> Option<&'m str> {
    let m = match a.c[c].msg {
        Some(m) => m,
        None => a.c[*a.c[c].children.first()?].msg?,
    };
    Some(msgs[m].subject.as_str())
}

/// (5) Gathers the root threads by base subject, visiting them in date order (as Dovecot
/// does; the RFC leaves the order open and the result depends on it).
fn merge_by_subject(a: &mut Arena, msgs: &[ThreadMsg], mut roots: Vec<usize>) -> Vec<usize> {
    roots.sort_by_key(|&r| sort_date(a, msgs, r));
    let is_reply = |a: &Arena, c: usize| a.c[c].msg.is_some_and(|m| msgs[m].reply);
    let mut table: HashMap<&str, usize> = HashMap::new();
    // (5B) The container each subject gathers under: a dummy, else a non-reply if any.
    for &r in &roots {
        let Some(subj) = root_subject(a, msgs, r).filter(|s| !s.is_empty()) else {
            continue;
        };
        let replaces = |old: usize| {
            // A dummy replaces a message; a non-reply message replaces a reply.
            (a.c[r].msg.is_none() && a.c[old].msg.is_some())
                || (is_reply(a, old) && a.c[r].msg.is_some() && !is_reply(a, r))
        };
        if table.get(subj).is_none_or(|&old| replaces(old)) {
            table.insert(subj, r);
        }
    }
    // (5C) Merge each root into its subject's container.
    let mut dead = vec![false; a.c.len()];
    let mut made = Vec::new();
    for &r in &roots {
        let Some(subj) = root_subject(a, msgs, r).filter(|s| !s.is_empty()) else {
            continue;
        };
        let t = table[subj];
        if t == r {
            continue;
        }
        let (t_dummy, r_dummy) = (a.c[t].msg.is_none(), a.c[r].msg.is_none());
        if t_dummy && r_dummy {
            for k in std::mem::take(&mut a.c[r].children) {
                a.c[k].parent = Some(t);
                a.c[t].children.push(k);
            }
            dead[r] = true;
        } else if t_dummy {
            a.link(t, r);
        } else if r_dummy {
            a.link(r, t);
            table.insert(subj, r);
        } else if !is_reply(a, t) && is_reply(a, r) {
            a.link(t, r);
        } else {
            let d = a.new_container(None);
            dead.push(false);
            a.link(d, t);
            a.link(d, r);
            table.insert(subj, d);
            made.push(d);
        }
    }
    roots
        .into_iter()
        .chain(made)
        .filter(|&c| a.c[c].parent.is_none() && !dead[c])
        .collect()
}

fn to_node(a: &Arena, msgs: &[ThreadMsg], c: usize) -> Node {
    Node {
        msg: a.c[c].msg.map(|m| msgs[m].id),
        children: a.c[c].children.iter().map(|&k| to_node(a, msgs, k)).collect(),
    }
}

/// The `* THREAD` response: `thread-list`s of RFC 5256 §4.
pub fn response(roots: &[Node]) -> String {
    let mut s = String::from("* THREAD");
    if !roots.is_empty() {
        s.push(' ');
    }
    for r in roots {
        s.push('(');
        write_chain(r, &mut s);
        s.push(')');
    }
    s
}

/// A node and its descendants: a single child continues the list, several are each
/// parenthesised (`(3 6 (4 23)(44 7 96))`).
fn write_chain(n: &Node, s: &mut String) {
    let mut at = n;
    let mut first = true;
    loop {
        if let Some(m) = at.msg {
            if !first {
                s.push(' ');
            }
            s.push_str(&m.to_string());
            first = false;
        }
        match at.children.as_slice() {
            [] => return,
            [only] if at.msg.is_some() => at = only,
            kids => {
                if !first {
                    s.push(' ');
                }
                for k in kids {
                    s.push('(');
                    write_chain(k, s);
                    s.push(')');
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u32, date: i64, subject: &str, mid: &str, refs: &[&str]) -> ThreadMsg {
        ThreadMsg {
            id,
            date,
            subject: subject.trim_start_matches("RE:").trim().to_string(),
            reply: subject.starts_with("RE:"),
            message_id: (!mid.is_empty()).then(|| mid.to_string()),
            references: refs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn references_chains_and_siblings() {
        let msgs = [
            m(1, 10, "A", "a", &[]),
            m(2, 20, "RE:A", "b", &["a"]),
            m(3, 30, "RE:A", "c", &["a"]),
            m(4, 5, "B", "d", &[]),
            m(5, 40, "RE:A", "e", &["a", "b"]),
        ];
        let t = thread(&msgs, Algorithm::References);
        assert_eq!(response(&t), "* THREAD (4)(1 (2 5)(3))");
    }

    #[test]
    fn loops_duplicates_and_missing() {
        let msgs = [
            m(1, 1, "X", "x", &["y"]),
            m(2, 2, "Y", "y", &["x"]),
            m(3, 3, "Z", "x", &[]),
            m(4, 4, "W", "", &["gone"]),
        ];
        let t = thread(&msgs, Algorithm::References);
        // 1 is under 2's reference chain; 2's reference to x would loop and is not made.
        let s = response(&t);
        assert!(s.starts_with("* THREAD "), "{s}");
        for id in ["1", "2", "3", "4"] {
            assert!(s.contains(id), "{s}");
        }
    }

    #[test]
    fn ordered_subject() {
        let msgs = [
            m(1, 30, "A", "", &[]),
            m(2, 10, "B", "", &[]),
            m(3, 20, "A", "", &[]),
            m(4, 40, "A", "", &[]),
            m(5, 50, "B", "", &[]),
        ];
        let t = thread(&msgs, Algorithm::OrderedSubject);
        assert_eq!(response(&t), "* THREAD (2 5)(3 (1)(4))");
        assert_eq!(response(&[]), "* THREAD");
    }

    #[test]
    fn subject_merge_makes_dummy() {
        let msgs = [m(1, 1, "S", "p", &[]), m(2, 2, "S", "q", &[])];
        let t = thread(&msgs, Algorithm::References);
        assert_eq!(response(&t), "* THREAD ((1)(2))");
        // Visited in date order: 3 and 1 make a dummy, which then takes the reply 2.
        let msgs = [m(1, 1, "S", "p", &[]), m(2, 2, "RE:S", "q", &[]), m(3, 0, "S", "r", &[])];
        let t = thread(&msgs, Algorithm::References);
        assert_eq!(response(&t), "* THREAD ((3)(1)(2))");
        // A reply seen first goes under the later non-reply.
        let msgs = [m(1, 1, "RE:S", "p", &[]), m(2, 2, "S", "q", &[])];
        let t = thread(&msgs, Algorithm::References);
        assert_eq!(response(&t), "* THREAD (2 1)");
        let t = thread(&msgs, Algorithm::Refs);
        assert_eq!(response(&t), "* THREAD (1)(2)");
    }
}
