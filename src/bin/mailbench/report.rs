//! Measurements and their presentation: bounded latency samples, percentiles, and the
//! result as a table (humans) or one JSON object (scripts, `--json`).
//!
//! Latencies are kept as microseconds in a `Vec<u32>` per client, capped at
//! [`SAMPLE_CAP`] with reservoir sampling (Vitter's algorithm R) beyond that, so memory is
//! bounded however long a run lasts; percentiles come from sorting the merged samples.
use crate::rng::SplitMix64;
use std::fmt::Write as _;
use std::time::Duration;

/// Samples kept per client before reservoir sampling takes over.
pub const SAMPLE_CAP: usize = 100_000;

/// Latency samples of one client.
pub struct Samples {
    pub us: Vec<u32>,
    /// Samples offered, for the reservoir's replacement probability.
    seen: u64,
    rng: SplitMix64,
}

impl Samples {
    pub fn new(seed: u64) -> Samples {
        Samples {
            us: Vec::new(),
            seen: 0,
            rng: SplitMix64::new(seed),
        }
    }

    pub fn record(&mut self, d: Duration) {
        let v = d.as_micros().min(u128::from(u32::MAX)) as u32;
        self.seen += 1;
        if self.us.len() < SAMPLE_CAP {
            self.us.push(v);
        } else {
            let j = self.rng.below(self.seen);
            if (j as usize) < SAMPLE_CAP {
                self.us[j as usize] = v;
            }
        }
    }
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
pub fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// An ordered list of named values, printed as a table or as a flat JSON object.
#[derive(Default)]
pub struct Report {
    fields: Vec<(String, Value)>,
}

pub enum Value {
    Str(String),
    Num(f64),
    Int(i64),
    List(Vec<String>),
}

impl Report {
    pub fn str(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.fields.push((k.into(), Value::Str(v.into())));
        self
    }
    pub fn num(&mut self, k: &str, v: f64) -> &mut Self {
        self.fields.push((k.into(), Value::Num(v)));
        self
    }
    pub fn int(&mut self, k: &str, v: i64) -> &mut Self {
        self.fields.push((k.into(), Value::Int(v)));
        self
    }
    pub fn list(&mut self, k: &str, v: Vec<String>) -> &mut Self {
        self.fields.push((k.into(), Value::List(v)));
        self
    }

    pub fn get_num(&self, k: &str) -> Option<f64> {
        self.fields.iter().find_map(|(n, v)| match v {
            Value::Num(x) if n == k => Some(*x),
            Value::Int(x) if n == k => Some(*x as f64),
            _ => None,
        })
    }

    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json_str(&mut s, k);
            s.push(':');
            match v {
                Value::Str(x) => json_str(&mut s, x),
                Value::Num(x) if x.is_finite() => write!(s, "{}", round3(*x)).expect("write"),
                Value::Num(_) => s.push_str("null"),
                Value::Int(x) => write!(s, "{x}").expect("write"),
                Value::List(xs) => {
                    s.push('[');
                    for (j, x) in xs.iter().enumerate() {
                        if j > 0 {
                            s.push(',');
                        }
                        json_str(&mut s, x);
                    }
                    s.push(']');
                }
            }
        }
        s.push('}');
        s
    }

    pub fn to_table(&self) -> String {
        let w = self.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut s = String::new();
        for (k, v) in &self.fields {
            let val = match v {
                Value::Str(x) => x.clone(),
                Value::Num(x) => format!("{}", round3(*x)),
                Value::Int(x) => x.to_string(),
                Value::List(xs) if xs.is_empty() => "-".into(),
                Value::List(xs) => xs.join(" | "),
            };
            writeln!(s, "{k:<w$}  {val}").expect("write");
        }
        s
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// RFC 8259 string escaping.
fn json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string serializes"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&v, 100.0), 100.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
        assert_eq!(percentile_ms(&[7000], 99.0), 7.0);
    }

    #[test]
    fn reservoir_is_bounded() {
        let mut s = Samples::new(1);
        for i in 0..(SAMPLE_CAP as u64 * 3) {
            s.record(Duration::from_micros(i));
        }
        assert_eq!(s.us.len(), SAMPLE_CAP);
        // Later samples replaced some early ones.
        assert!(s.us.iter().any(|&v| v as usize >= SAMPLE_CAP));
    }

    #[test]
    fn json_escapes_and_orders() {
        let mut r = Report::default();
        r.str("w", "a\"b\\c\n\u{1}")
            .num("x", 1.23456)
            .int("n", -3)
            .list("e", vec!["q".into()]);
        r.num("bad", f64::NAN);
        assert_eq!(
            r.to_json(),
            r#"{"w":"a\"b\\c\n\u0001","x":1.235,"n":-3,"e":["q"],"bad":null}"#
        );
        assert_eq!(r.get_num("n"), Some(-3.0));
        assert!(r.to_table().contains("x    1.235"));
    }
}
