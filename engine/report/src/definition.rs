//! Where each node of a YAML definition file stands (line and column), so that errors
//! found long after parsing — an unknown column inside a SQL fragment, a cycle between
//! measures — can still point at the exact place in the file.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One loaded definition file: its name for messages, its text, and the position of
/// every key and value in it, by path (`blocks[2].measures.share`).
#[derive(Debug, Clone, Default)]
pub struct DefinitionFile {
    /// The name shown in messages (a path relative to where it was found).
    pub name: String,
    pub text: String,
    /// Found on first use: only messages need positions, and indexing every file costs a
    /// parse of its own on every run.
    positions: std::sync::OnceLock<Positions>,
}

/// Where each value and each mapping key of a file is, by path.
#[derive(Debug, Clone, Default)]
struct Positions {
    values: HashMap<String, (Pos, Style)>,
    keys: HashMap<String, Pos>,
}

/// How a scalar was written; it decides how offsets inside the value map to columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// A plain scalar on one line: offsets map directly.
    Plain,
    /// A single- or double-quoted scalar: offsets shift by the opening quote.
    Quoted,
    /// A block scalar, a collection, or anything else: point at the node only.
    Other,
}

impl DefinitionFile {
    /// A file of `text`, indexed when a position is first asked for.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        DefinitionFile {
            name: name.into(),
            text: text.into(),
            positions: std::sync::OnceLock::new(),
        }
    }

    /// The positions in the text. A YAML syntax error is not reported here: serde_yaml
    /// reports it, with its own location, when the file is deserialised.
    fn positions(&self) -> &Positions {
        self.positions.get_or_init(|| {
            let mut indexer = Indexer::default();
            let mut parser = Parser::new_from_str(&self.text);
            // A syntax error stops indexing; the positions found so far stay usable.
            let _ = parser.load(&mut indexer, false);
            Positions {
                values: indexer.values,
                keys: indexer.keys,
            }
        })
    }

    /// The position of the value at `path`, else of the nearest enclosing node that has
    /// one, else line 1 column 1.
    pub fn pos(&self, path: &str) -> Pos {
        let mut path = path;
        loop {
            if let Some((pos, _)) = self.positions().values.get(path) {
                return *pos;
            }
            match parent(path) {
                Some(p) => path = p,
                None => return Pos { line: 1, column: 1 },
            }
        }
    }

    /// The position of the key that names the entry at `path` (falls back to `pos`).
    pub fn key_pos(&self, path: &str) -> Pos {
        self.positions()
            .keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.pos(path))
    }

    /// The file position of 1-based (`line`, `column`) inside the scalar at `path`. Exact
    /// for the first line of a plain or quoted scalar; the scalar's start otherwise.
    pub fn pos_in_value(&self, path: &str, line: usize, column: usize) -> Pos {
        match self.positions().values.get(path).copied() {
            Some((start, Style::Plain)) if line == 1 => Pos {
                line: start.line,
                column: start.column + column.saturating_sub(1),
            },
            Some((start, Style::Quoted)) if line == 1 => Pos {
                line: start.line,
                column: start.column + column,
            },
            _ => self.pos(path),
        }
    }

    /// The position of the first occurrence of `needle` inside the single-line scalar at
    /// `path`; the scalar's own position when it cannot be pinned down.
    pub fn pos_within(&self, path: &str, needle: &str) -> Pos {
        let Some((start, style)) = self.positions().values.get(path).copied() else {
            return self.pos(path);
        };
        let shift = match style {
            Style::Plain => 0,
            Style::Quoted => 1,
            Style::Other => return start,
        };
        let line_text = self.text.lines().nth(start.line - 1).unwrap_or("");
        let from: usize = line_text
            .char_indices()
            .nth(start.column - 1 + shift)
            .map(|(i, _)| i)
            .unwrap_or(line_text.len());
        match find_word(&line_text[from..], needle) {
            Some(offset) => Pos {
                line: start.line,
                column: start.column + shift + line_text[from..from + offset].chars().count(),
            },
            None => start,
        }
    }
}

/// The byte offset of `needle` in `hay` as a whole word (not inside a longer name).
fn find_word(hay: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut start = 0;
    while let Some(found) = hay[start..].find(needle) {
        let at = start + found;
        let before = hay[..at].chars().next_back();
        let after = hay[at + needle.len()..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return Some(at);
        }
        start = at + needle.len();
    }
    None
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → None.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Joins a parent path and a key: `join("blocks[0]", "id")` = `blocks[0].id`.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Joins a parent path and an index: `index("blocks", 2)` = `blocks[2]`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    values: HashMap<String, (Pos, Style)>,
    keys: HashMap<String, Pos>,
}

impl Indexer {
    /// The path of the node that starts now, or None when the node is a mapping key.
    fn next_value_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = index(path, *next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
        }
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match ev {
            Event::Scalar(value, style, ..) => match self.next_value_path() {
                Some(path) => {
                    let style = match style {
                        TScalarStyle::Plain => Style::Plain,
                        TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => Style::Quoted,
                        _ => Style::Other,
                    };
                    self.values.insert(path, (pos, style));
                }
                None => {
                    if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                        self.keys.insert(join(path, &value), pos);
                        *key = Some(value);
                    }
                }
            },
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = self.next_value_path().unwrap_or_default();
                self.values.insert(path.clone(), (pos, Style::Other));
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map { path, key: None }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                self.next_value_path();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "report: forgotten\nblocks:\n  - id: totals\n    measures:\n      share: 100.0 * forgotten / nullif(created, 0)\n      quoted: \"sum(amout)\"\n  - { id: second, where: is_open }\n";

    #[test]
    fn positions_of_values_and_keys() {
        let src = DefinitionFile::new("r.yaml", TEXT);
        assert_eq!(src.pos("report"), Pos { line: 1, column: 9 });
        assert_eq!(src.pos("blocks[0].id"), Pos { line: 3, column: 9 });
        assert_eq!(
            src.key_pos("blocks[0].measures.share"),
            Pos { line: 5, column: 7 }
        );
        assert_eq!(
            src.pos("blocks[1].where"),
            Pos {
                line: 7,
                column: 26
            }
        );
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(src.pos("blocks[0].measures.nope").line, 5);
    }

    #[test]
    fn positions_inside_expressions() {
        let src = DefinitionFile::new("r.yaml", TEXT);
        assert_eq!(
            src.pos_within("blocks[0].measures.share", "created"),
            Pos {
                line: 5,
                column: 41
            }
        );
        assert_eq!(
            src.pos_within("blocks[0].measures.quoted", "amout"),
            Pos {
                line: 6,
                column: 20
            }
        );
        // `forgotten` as a whole word, not inside a longer identifier.
        assert_eq!(find_word("forgotten_x + forgotten", "forgotten"), Some(14));
    }
}
