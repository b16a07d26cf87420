//! The admin socket's wire format: one JSON object per line each way, `\n`-terminated (a
//! `\r` before it is ignored), a request at most [`MAX_REQUEST`] octets. Sans-IO: bytes in,
//! requests out ([`Reader`]), the same at every chunk size; an over-long line is reported
//! once and dropped up to its LF.

use serde::{Deserialize, Serialize};

/// The longest request line (without its LF). Requests are a command and a few names.
pub const MAX_REQUEST: usize = 8 * 1024;

/// A request (`{"cmd":"who"}`, `{"cmd":"kick","user":"alice"}`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The live sessions.
    Who,
    /// Ends the IMAP/POP3 sessions of `user`, or the one session with id `session` (16 hex
    /// digits, as the protocol log writes it).
    Kick {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// STATUS values of `folders` (every selectable folder when empty).
    MailboxStatus {
        user: String,
        #[serde(default)]
        folders: Vec<String>,
    },
    /// The user's folders.
    MailboxList { user: String },
    /// Rebuilds the derived state of `folder` (every folder when absent).
    ForceResync {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        folder: Option<String>,
    },
    /// The quota root's limits and usage.
    QuotaGet { user: String },
}

/// Why a request failed, for the CLI's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request was malformed (exit 64).
    Usage,
    /// No such user in the users file (exit 67).
    UnknownUser,
    /// No such folder, or the store failed (exit 1).
    Failed,
    /// The peer is not the daemon's user or root.
    Forbidden,
}

/// A reply: `{"ok":true,"result":...}` or `{"ok":false,"code":"...","error":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn ok(result: serde_json::Value) -> Response {
        Response {
            ok: true,
            result: Some(result),
            code: None,
            error: None,
        }
    }

    pub fn err(code: ErrorCode, error: impl Into<String>) -> Response {
        Response {
            ok: false,
            result: None,
            code: Some(code),
            error: Some(error.into()),
        }
    }

    /// The line to send (without the LF); serialising these types cannot fail.
    pub fn to_line(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{\"ok\":false}".to_vec())
    }
}

/// What the reader found in the input so far.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A complete request.
    Request(Request),
    /// A complete line that is not a request (the error says why).
    Bad(String),
    /// A line over [`MAX_REQUEST`] (reported once, discarded up to its LF).
    TooLong,
}

/// Splits input into request lines under [`MAX_REQUEST`] and parses them.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
    /// Inside an over-long line: drop input up to the next LF.
    skipping: bool,
}

impl Reader {
    /// Adds input.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if the input holds one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let lf = memchr::memchr(b'\n', &self.buf);
            if self.skipping {
                match lf {
                    Some(i) => {
                        self.buf.drain(..=i);
                        self.skipping = false;
                        continue;
                    }
                    None => {
                        self.buf.clear();
                        return None;
                    }
                }
            }
            let Some(i) = lf else {
                if self.buf.len() > MAX_REQUEST {
                    self.buf.clear();
                    self.skipping = true;
                    return Some(Frame::TooLong);
                }
                return None;
            };
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let line = &line[..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > MAX_REQUEST {
                return Some(Frame::TooLong);
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(match serde_json::from_slice::<Request>(line) {
                Ok(r) => Frame::Request(r),
                Err(e) => Frame::Bad(e.to_string()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_at(input: &[u8], chunk: usize) -> Vec<Frame> {
        let mut r = Reader::default();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            r.push(piece);
            while let Some(f) = r.next_frame() {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn requests_parse_the_same_at_every_chunk_size() {
        let long = format!("{{\"cmd\":\"who\",\"x\":\"{}\"}}\n", "a".repeat(MAX_REQUEST));
        let input = [
            "{\"cmd\":\"who\"}\n",
            "\r\n",
            "{\"cmd\":\"kick\",\"user\":\"alice\"}\r\n",
            "{\"cmd\":\"kick\",\"session\":\"00000001deadbeef\"}\n",
            long.as_str(),
            "{\"cmd\":\"mailbox_status\",\"user\":\"b\",\"folders\":[\"INBOX\",\"A/B\"]}\n",
            "{\"cmd\":\"nope\"}\n",
            "not json\n",
            "{\"cmd\":\"force_resync\",\"user\":\"b\"}\n",
            "{\"cmd\":\"quota_get\",\"user\":\"b\"}\n",
            "{\"cmd\":\"mailbox_list\",\"user\":\"b\"}\n",
            "{\"cmd\":\"who\"}", // no LF yet: not complete
        ]
        .concat();
        let whole = frames_at(input.as_bytes(), input.len());
        assert_eq!(whole.len(), 10, "{whole:?}");
        assert_eq!(whole[0], Frame::Request(Request::Who));
        assert_eq!(
            whole[1],
            Frame::Request(Request::Kick {
                user: Some("alice".into()),
                session: None
            })
        );
        assert_eq!(whole[3], Frame::TooLong);
        assert_eq!(
            whole[4],
            Frame::Request(Request::MailboxStatus {
                user: "b".into(),
                folders: vec!["INBOX".into(), "A/B".into()]
            })
        );
        assert!(matches!(whole[5], Frame::Bad(_)));
        assert!(matches!(whole[6], Frame::Bad(_)));
        assert_eq!(
            whole[7],
            Frame::Request(Request::ForceResync {
                user: "b".into(),
                folder: None
            })
        );
        // Every small size, then sizes around the limit (every size up to 9 KiB is slow in a
        // debug build and finds nothing these do not).
        let sizes = (1..=97).chain([255, 1000, 4096, MAX_REQUEST, MAX_REQUEST + 1, input.len() - 1]);
        for chunk in sizes {
            assert_eq!(frames_at(input.as_bytes(), chunk), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn requests_round_trip_and_unknown_fields_are_refused() {
        for r in [
            Request::Who,
            Request::Kick {
                user: None,
                session: Some("0123456789abcdef".into()),
            },
            Request::QuotaGet { user: "u".into() },
            Request::MailboxList { user: "u".into() },
        ] {
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        }
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"quota_get","user":"u","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"quota_get"}"#).is_err());
        let resp = Response::err(ErrorCode::UnknownUser, "no");
        let back: Response = serde_json::from_slice(&resp.to_line()).unwrap();
        assert_eq!(back, resp);
    }
}
