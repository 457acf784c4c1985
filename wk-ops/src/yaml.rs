//! The one place that parses YAML for wk-ops: the document itself (serde_yaml) and an index
//! from key paths (`nodes[1].ports.api`) to the line and column where each key or item starts,
//! so every inventory problem can point at its line, including ones found after parsing.
//! Keeping both behind this module lets a later switch to a maintained serde_yaml fork touch
//! one file.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A position in the source text (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spot {
    pub line: usize,
    pub col: usize,
}

/// A YAML syntax error with its position when the parser knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub spot: Option<Spot>,
    pub message: String,
}

/// Parses one YAML document into a generic value, resolving `<<` merge keys.
pub fn parse(src: &str) -> Result<serde_yaml::Value, SyntaxError> {
    match serde_yaml::from_str::<serde_yaml::Value>(src) {
        Ok(mut v) => {
            v.apply_merge().map_err(|e| syntax_error(&e))?;
            Ok(v)
        }
        Err(e) => Err(syntax_error(&e)),
    }
}

fn syntax_error(e: &serde_yaml::Error) -> SyntaxError {
    let spot = e.location().map(|l| Spot {
        line: l.line(),
        col: l.column(),
    });
    // serde_yaml appends " at line L column C"; the spot carries that already.
    let mut message = e.to_string();
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    SyntaxError { spot, message }
}

/// Key path → position of that key (for mapping entries) or item (for sequence entries).
#[derive(Debug, Default, Clone)]
pub struct LineIndex {
    spots: HashMap<String, Spot>,
}

impl LineIndex {
    /// Indexes `src`. A document the event parser cannot read gives an empty index (the
    /// serde_yaml error reported separately says what is wrong).
    pub fn build(src: &str) -> LineIndex {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(src);
        if parser.load(&mut b, false).is_err() {
            return LineIndex::default();
        }
        LineIndex { spots: b.spots }
    }

    /// The position of `path`, or of its nearest indexed ancestor.
    pub fn locate(&self, path: &str) -> Option<Spot> {
        let mut p = path;
        loop {
            if let Some(s) = self.spots.get(p) {
                return Some(*s);
            }
            p = parent(p)?;
        }
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → None.
fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// Joins a key onto a path.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Joins a sequence index onto a path.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    spots: HashMap<String, Spot>,
    /// Set while inside a mapping used as a key (not indexed).
    complex_key_depth: usize,
}

impl Builder {
    /// The path of the value about to start, given the innermost frame.
    fn value_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Map { path, key: Some(k) }) => Some(join(path, k)),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Seq { path, next }) => Some(index(path, *next)),
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        if !path.is_empty() {
            self.spots.entry(path.to_string()).or_insert(Spot {
                line: mark.line(),
                col: mark.col() + 1,
            });
        }
    }

    /// A value has ended: the enclosing mapping waits for a key, the sequence moves on.
    fn finish_value(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { next, .. }) => *next += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.complex_key_depth > 0 {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.complex_key_depth += 1,
                Event::MappingEnd | Event::SequenceEnd => {
                    self.complex_key_depth -= 1;
                    if self.complex_key_depth == 0 {
                        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                            *key = Some("?".into());
                        }
                    }
                }
                _ => {}
            }
            return;
        }
        match ev {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let Some(path) = self.value_path() else {
                    // A mapping or sequence in key position.
                    self.complex_key_depth = 1;
                    return;
                };
                if matches!(self.stack.last(), Some(Frame::Seq { .. })) {
                    self.record(&path, mark);
                }
                let frame = if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map { path, key: None }
                } else {
                    Frame::Seq { path, next: 0 }
                };
                self.stack.push(frame);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.finish_value();
            }
            Event::Scalar(text, ..) => match self.stack.last_mut() {
                Some(Frame::Map {
                    path,
                    key: key @ None,
                }) => {
                    let p = join(path, &text);
                    *key = Some(text);
                    self.record(&p, mark);
                }
                _ => {
                    if let Some(p) = self.value_path() {
                        if matches!(self.stack.last(), Some(Frame::Seq { .. })) {
                            self.record(&p, mark);
                        }
                    }
                    self.finish_value();
                }
            },
            Event::Alias(_) => {
                if let Some(Frame::Map {
                    key: key @ None, ..
                }) = self.stack.last_mut()
                {
                    *key = Some("*".into());
                } else {
                    self.finish_value();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "\
cluster:
  name: x
  raft: { heartbeatTick: 1, electionTick: 10 }
nodes:
  - { id: 1001, host: a }
  - id: 1002
    host: b
    ports:
      api: 5002
";

    #[test]
    fn locates_block_and_flow_keys() {
        let ix = LineIndex::build(SRC);
        let at = |p: &str| ix.locate(p).map(|s| (s.line, s.col));
        assert_eq!(at("cluster"), Some((1, 1)));
        assert_eq!(at("cluster.name"), Some((2, 3)));
        assert_eq!(at("cluster.raft.electionTick"), Some((3, 29)));
        assert_eq!(at("nodes[0]"), Some((5, 5)));
        assert_eq!(at("nodes[0].host"), Some((5, 17)));
        assert_eq!(at("nodes[1]"), Some((6, 7)));
        assert_eq!(at("nodes[1].ports.api"), Some((9, 7)));
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(at("nodes[1].ports.apii"), Some((8, 5)));
        assert_eq!(at("loadBalancer"), None);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.spot.is_some(), "{e:?}");
        assert!(!e.message.contains(" at line "));
    }

    #[test]
    fn merge_keys_are_applied() {
        let v = parse("base: &b { x: 1 }\nitem:\n  <<: *b\n  y: 2\n").unwrap();
        assert_eq!(v["item"]["x"], serde_yaml::Value::from(1));
    }
}
