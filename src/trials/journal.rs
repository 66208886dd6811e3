//! Optuna's `JournalFileBackend`: one JSON operation per line, appended by workers under a lock and read
//! here with none, from the byte offset of the last complete line. Ids are implicit, so the replay follows
//! Optuna's own rules exactly (`optuna/storages/journal/_storage.py`): a study id counts accepted
//! CREATE_STUDY operations, a trial id counts every trial created, operations on a finished or unknown trial
//! are ignored, and a RUNNING → RUNNING change is rejected (two workers racing for one WAITING trial).
//!
//! NFS produces blank lines and two records glued on one line (optuna#5138): both are reported with their
//! line number and read on. A last line without its newline, or a last line that does not parse yet, is
//! left for the next read.

use super::model::{Attrs, Direction, Interner, ParamSpace, Study, Trial, TrialState};
use super::{TimeBasis, pyjson};
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How much of the file one read takes at a time.
const READ_PIECE: u64 = 4 << 20;

#[derive(Default)]
struct Replay {
    /// Live studies by id, each holding its trials in number order.
    studies: BTreeMap<i64, Study>,
    next_study_id: i64,
    /// Every trial ever created, by id (the index): its study and its place in that study's trials.
    /// Trials of a deleted study keep their ids, as in Optuna.
    trial_loc: Vec<(i64, usize)>,
    /// Param spaces and attribute keys, shared by the trials (thousands of trials share a handful).
    interner: Interner,
    /// A distribution each param of a study already has: a new one must be compatible with it.
    first: HashMap<(i64, Box<str>), Arc<ParamSpace>>,
}

pub struct JournalReader {
    path: PathBuf,
    /// Byte offset just past the last line applied, and that line's number.
    offset: u64,
    line: usize,
    /// The file's identity when last read: a new inode or a shorter file means it was replaced.
    ident: Option<(u64, u64)>,
    replay: Replay,
    warnings: Vec<String>,
    /// How much of the file one read takes at a time (smaller in tests).
    piece: u64,
}

/// Whether a file's first line reads as a journal operation.
pub fn looks_like_journal(path: &Path) -> bool {
    let mut head = vec![0u8; 4096];
    let Ok(n) = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) else {
        return false;
    };
    let text = String::from_utf8_lossy(&head[..n]);
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    first.trim_start().starts_with('{') && first.contains("\"op_code\"")
}

impl JournalReader {
    pub fn open(path: &Path) -> Result<JournalReader, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        if meta.len() > 0 && !looks_like_journal(path) {
            return Err(format!(
                "{}: not an Optuna journal (its first line is no {{\"op_code\": …}} record)",
                path.display()
            ));
        }
        Ok(JournalReader {
            path: path.to_path_buf(),
            offset: 0,
            line: 0,
            ident: None,
            replay: Replay::default(),
            warnings: Vec::new(),
            piece: READ_PIECE,
        })
    }

    /// Applies the lines appended since the last read. Returns whether anything was applied.
    pub fn read_new(&mut self) -> Result<bool, String> {
        use std::os::unix::fs::MetadataExt;
        let path = self.path.clone();
        let err = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut f = std::fs::File::open(&self.path).map_err(err)?;
        let meta = f.metadata().map_err(err)?;
        let ident = (meta.dev(), meta.ino());
        if self.ident.is_some_and(|i| i != ident) || meta.len() < self.offset {
            // Replaced or truncated: what was read no longer describes the file.
            self.warnings.push(format!(
                "{}: the file was replaced or truncated; reading it again from the start",
                self.path.display()
            ));
            self.offset = 0;
            self.line = 0;
            self.replay = Replay::default();
        }
        self.ident = Some(ident);
        // In pieces, so a first read of a big journal holds a piece, not the whole file, beside the
        // studies; each piece starts at the first line not applied yet.
        let end = meta.len();
        let mut piece = self.piece;
        let mut buf = Vec::new();
        let mut applied = false;
        while self.offset < end {
            let from = self.offset;
            let n = (end - from).min(piece);
            f.seek(SeekFrom::Start(from)).map_err(err)?;
            buf.clear();
            (&mut f).take(n).read_to_end(&mut buf).map_err(err)?;
            applied |= self.consume(&buf);
            if self.offset == from {
                // No whole line in the piece (or only one held back): a longer piece, unless this was
                // the rest of the file.
                if n == end - from {
                    break;
                }
                piece = piece.saturating_mul(2);
            }
        }
        Ok(applied)
    }

    /// Applies the complete lines of `buf`, the bytes of the file from the saved offset on, and moves
    /// the offset past what was applied. Returns whether anything was.
    fn consume(&mut self, buf: &[u8]) -> bool {
        let mut applied = false;
        let mut pos = 0usize;
        // Lines that did not parse, held until a later line shows they were not a write in progress.
        let mut held: Option<(usize, usize, String)> = None;
        while let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') {
            let end = pos + nl;
            let line_no = self.line + 1;
            let raw = &buf[pos..end];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if let Some((n, _, why)) = held.take() {
                self.warnings.push(format!(
                    "{}:{n}: not a journal record ({why}); skipped",
                    self.path.display()
                ));
            }
            match self.line_ops(raw) {
                Ok(ops) if ops.is_empty() => self.warnings.push(format!(
                    "{}:{line_no}: blank line skipped",
                    self.path.display()
                )),
                Ok(ops) => {
                    if ops.len() > 1 {
                        self.warnings.push(format!(
                            "{}:{line_no}: {} records glued on one line; read each",
                            self.path.display(),
                            ops.len()
                        ));
                    }
                    for op in &ops {
                        self.replay.apply(op);
                    }
                    applied = true;
                }
                Err(why) => held = Some((line_no, pos, why)),
            }
            self.line += 1;
            pos = end + 1;
        }
        match held {
            // The last complete line does not parse: perhaps a write still under way. Read it again next time.
            Some((n, at, _)) => {
                self.offset += at as u64;
                self.line = n - 1;
            }
            None => self.offset += pos as u64,
        }
        applied
    }

    /// The operations on one line: none for a blank line, several when records were glued together.
    fn line_ops(&self, raw: &[u8]) -> Result<Vec<Value>, String> {
        let text = std::str::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        match pyjson::parse(text) {
            Ok(v) if v.get("op_code").is_some() => Ok(vec![v]),
            Ok(_) => Err("no op_code".into()),
            Err(e) => {
                let parts = split_glued(text);
                if parts.len() > 1 {
                    let ops: Result<Vec<Value>, _> =
                        parts.iter().map(|p| pyjson::parse(p)).collect();
                    if let Ok(ops) = ops
                        && ops.iter().all(|o| o.get("op_code").is_some())
                    {
                        return Ok(ops);
                    }
                }
                Err(e.to_string())
            }
        }
    }

    /// The studies as the lines read so far leave them.
    pub fn studies(&self) -> Vec<&Study> {
        self.replay.studies.values().collect()
    }

    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

/// Replays journal bytes as if read from a file in two reads, the first of `first` bytes (a writer
/// that had written only that much): the studies, the warnings, and the byte offset reached. The
/// fuzzing entry point, and the check that a read in pieces equals a read at once.
pub fn replay_bytes(data: &[u8], first: usize) -> (Vec<Study>, Vec<String>, u64) {
    let mut r = JournalReader {
        path: PathBuf::from("<bytes>"),
        offset: 0,
        line: 0,
        ident: None,
        replay: Replay::default(),
        warnings: Vec::new(),
        piece: READ_PIECE,
    };
    r.consume(&data[..first.min(data.len())]);
    let at = usize::try_from(r.offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    r.consume(&data[at..]);
    let studies = r.studies().into_iter().cloned().collect();
    (studies, r.take_warnings(), r.offset)
}

/// Splits `{…}{…}` at the top-level boundaries (outside strings).
fn split_glued(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut strings = pyjson::Strings::default();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        if !strings.outside(c) {
            continue;
        }
        match c {
            '{' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    parts.push(&text[start..=i]);
                }
            }
            _ => {}
        }
    }
    parts
}

fn int(v: &Value, k: &str) -> Option<i64> {
    v.get(k)?.as_i64()
}

fn time(v: &Value, k: &str) -> Option<f64> {
    TimeBasis::Local.iso(v.get(k)?.as_str()?)
}

/// Study attributes of an operation.
fn attrs(v: Option<&Value>) -> IndexMap<String, Value> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn attrs_of(pairs: Vec<(Arc<str>, Value)>) -> Attrs {
    let mut a = Attrs::default();
    a.extend(pairs);
    a
}

fn values(v: Option<&Value>) -> Option<Vec<f64>> {
    match v? {
        Value::Array(a) => Some(
            a.iter()
                .map(|x| pyjson::number(x).unwrap_or(f64::NAN))
                .collect(),
        ),
        Value::Null => None,
        one => pyjson::number(one).map(|x| vec![x]),
    }
}

impl Replay {
    /// A trial attribute operation's pairs, with shared keys.
    fn trial_attrs(&mut self, v: Option<&Value>) -> Vec<(Arc<str>, Value)> {
        let Some(m) = v.and_then(Value::as_object) else {
            return Vec::new();
        };
        m.iter()
            .map(|(k, v)| (self.interner.key(k), v.clone()))
            .collect()
    }

    /// The trial an operation names, with its study id, if it exists (in a live study) and is not
    /// finished: only then may it change.
    fn updatable(&self, op: &Value) -> Option<(i64, &Trial)> {
        let id = usize::try_from(int(op, "trial_id")?).ok()?;
        let &(sid, pos) = self.trial_loc.get(id)?;
        let t = self.studies.get(&sid)?.trials.get(pos)?;
        (!t.state.is_finished()).then_some((sid, &**t))
    }

    /// The same trial, to change: copied first if a snapshot still holds it.
    fn update(&mut self, op: &Value) -> Option<&mut Trial> {
        self.updatable(op)?;
        let id = usize::try_from(int(op, "trial_id")?).ok()?;
        let &(sid, pos) = self.trial_loc.get(id)?;
        Some(Arc::make_mut(
            self.studies.get_mut(&sid)?.trials.get_mut(pos)?,
        ))
    }

    fn apply(&mut self, op: &Value) {
        let Some(code) = int(op, "op_code") else {
            return;
        };
        match code {
            0 => {
                let Some(name) = op.get("study_name").and_then(Value::as_str) else {
                    return;
                };
                if self.studies.values().any(|s| s.name == name) {
                    return;
                }
                let id = self.next_study_id;
                self.next_study_id += 1;
                let directions = op
                    .get("directions")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|d| {
                                d.as_i64()
                                    .and_then(Direction::from_code)
                                    .unwrap_or(Direction::NotSet)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.studies.insert(
                    id,
                    Study {
                        id,
                        name: name.to_string(),
                        directions,
                        user_attrs: IndexMap::new(),
                        system_attrs: IndexMap::new(),
                        trials: Vec::new(),
                    },
                );
            }
            1 => {
                if let Some(id) = int(op, "study_id") {
                    self.studies.remove(&id);
                }
            }
            2 | 3 => {
                let key = if code == 2 {
                    "user_attr"
                } else {
                    "system_attr"
                };
                if let Some(s) = int(op, "study_id").and_then(|id| self.studies.get_mut(&id)) {
                    let into = if code == 2 {
                        &mut s.user_attrs
                    } else {
                        &mut s.system_attrs
                    };
                    into.extend(attrs(op.get(key)));
                }
            }
            4 => self.create_trial(op),
            5 => {
                let (Some(name), Some(internal), Some(json)) = (
                    op.get("param_name").and_then(Value::as_str),
                    op.get("param_value_internal").and_then(pyjson::number),
                    op.get("distribution").and_then(Value::as_str),
                ) else {
                    return;
                };
                let space = self.interner.space(name, Some(json));
                let Some(d) = &space.distribution else {
                    return;
                };
                // Optuna drops a param whose distribution clashes with an earlier trial's of the study.
                let Some((sid, _)) = self.updatable(op) else {
                    return;
                };
                // Compatibility is an equivalence (same kind, same choices), so any earlier one will do.
                match self.first.get(&(sid, name.into())) {
                    Some(prev) if !prev.distribution.as_ref().is_some_and(|p| p.compatible(d)) => {
                        return;
                    }
                    Some(_) => {}
                    None => {
                        self.first.insert((sid, name.into()), space.clone());
                    }
                }
                if let Some(t) = self.update(op) {
                    t.params.set(space, internal);
                }
            }
            6 => {
                let Some(state) = int(op, "state").and_then(TrialState::from_code) else {
                    return;
                };
                let Some((_, t)) = self.updatable(op) else {
                    return;
                };
                if state == TrialState::Running && t.state == TrialState::Running {
                    return;
                }
                let Some(t) = self.update(op) else {
                    return;
                };
                if state == TrialState::Running {
                    t.start = time(op, "datetime_start");
                }
                if state.is_finished() {
                    t.end = time(op, "datetime_complete");
                }
                t.state = state;
                if let Some(v) = values(op.get("values")) {
                    t.values = v.into_boxed_slice();
                }
            }
            7 => {
                if let (Some(step), Some(v)) = (
                    int(op, "step"),
                    op.get("intermediate_value").and_then(pyjson::number),
                ) && let Some(t) = self.update(op)
                {
                    t.intermediate.insert(step, v);
                }
            }
            8 | 9 => {
                if self.updatable(op).is_none() {
                    return;
                }
                let key = if code == 8 {
                    "user_attr"
                } else {
                    "system_attr"
                };
                let pairs = self.trial_attrs(op.get(key));
                if let Some(t) = self.update(op) {
                    if code == 8 {
                        &mut t.user_attrs
                    } else {
                        &mut t.system_attrs
                    }
                    .extend(pairs);
                }
            }
            // 10 (DISCARD_TRIALS) is written only by rustuna, and Optuna itself skips it; so do we.
            _ => {}
        }
    }

    fn create_trial(&mut self, op: &Value) {
        let Some(sid) = int(op, "study_id").filter(|id| self.studies.contains_key(id)) else {
            return;
        };
        let id = self.trial_loc.len() as i64;
        let number = self.studies.get(&sid).map_or(0, |s| s.trials.len()) as i64;
        let state = int(op, "state")
            .and_then(TrialState::from_code)
            .unwrap_or(TrialState::Running);
        let mut t = Trial::new(id, number, state);
        t.start = time(op, "datetime_start");
        t.end = time(op, "datetime_complete");
        // A param counts with its distribution and its value both (Optuna's trial has both or neither).
        let params = op.get("params").and_then(Value::as_object);
        let mut spaces = Vec::new();
        if let Some(ds) = op.get("distributions").and_then(Value::as_object) {
            for (k, json) in ds {
                let Some(json) = json.as_str() else { continue };
                let space = self.interner.space(k, Some(json));
                if space.distribution.is_none() {
                    continue;
                }
                self.first
                    .entry((sid, k.as_str().into()))
                    .or_insert_with(|| space.clone());
                if let Some(x) = params.and_then(|p| p.get(k)).and_then(pyjson::number) {
                    spaces.push((space, x));
                }
            }
        }
        t.params.extend(spaces);
        t.user_attrs = attrs_of(self.trial_attrs(op.get("user_attrs")));
        t.system_attrs = attrs_of(self.trial_attrs(op.get("system_attrs")));
        t.values = values(op.get("values"))
            .or_else(|| values(op.get("value")))
            .unwrap_or_default()
            .into_boxed_slice();
        if let Some(iv) = op.get("intermediate_values").and_then(Value::as_object) {
            t.intermediate = iv
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, pyjson::number(v)?)))
                .collect();
        }
        if let Some(s) = self.studies.get_mut(&sid) {
            self.trial_loc.push((sid, s.trials.len()));
            s.trials.push(Arc::new(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(lines: &[&str]) -> Vec<Study> {
        let text = lines.join("\n") + "\n";
        replay_bytes(text.as_bytes(), text.len()).0
    }

    /// The studies after reading what was appended, and the warnings.
    fn load(r: &mut JournalReader) -> (Vec<Study>, Vec<String>) {
        r.read_new().unwrap();
        let studies = r.studies().into_iter().cloned().collect();
        (studies, r.take_warnings())
    }

    #[test]
    fn ids_follow_optunas_replay_rules() {
        let studies = replay(&[
            r#"{"op_code":0,"worker_id":"w","study_name":"a","directions":[1]}"#,
            // A duplicate name is ignored and takes no id.
            r#"{"op_code":0,"worker_id":"w","study_name":"a","directions":[2]}"#,
            r#"{"op_code":0,"worker_id":"w","study_name":"b","directions":[2]}"#,
            r#"{"op_code":4,"worker_id":"w","study_id":0,"datetime_start":null}"#,
            r#"{"op_code":4,"worker_id":"w","study_id":1,"datetime_start":null}"#,
            r#"{"op_code":1,"worker_id":"w","study_id":0}"#,
            // Trial ids count the deleted study's trial too: this is trial 2, number 1 of study b.
            r#"{"op_code":4,"worker_id":"w","study_id":1,"datetime_start":null}"#,
            r#"{"op_code":4,"worker_id":"w","study_id":7,"datetime_start":null}"#,
        ]);
        assert_eq!(studies.len(), 1);
        let b = &studies[0];
        assert_eq!((b.id, b.name.as_str()), (1, "b"));
        assert_eq!(b.directions, [Direction::Maximize]);
        let ids: Vec<(i64, i64)> = b.trials.iter().map(|t| (t.id, t.number)).collect();
        assert_eq!(ids, [(1, 0), (2, 1)]);
    }

    #[test]
    fn finished_trials_take_no_more_changes_and_running_twice_is_rejected() {
        let studies = replay(&[
            r#"{"op_code":0,"worker_id":"w","study_name":"a","directions":[1]}"#,
            r#"{"op_code":4,"worker_id":"w","study_id":0,"datetime_start":null,"state":4}"#,
            r#"{"op_code":6,"worker_id":"w1","trial_id":0,"state":0,"values":null,"datetime_start":"2026-01-01T00:00:00+00:00"}"#,
            // A second worker popping the same WAITING trial loses.
            r#"{"op_code":6,"worker_id":"w2","trial_id":0,"state":0,"values":null,"datetime_start":"2026-01-01T00:00:09+00:00"}"#,
            r#"{"op_code":7,"worker_id":"w1","trial_id":0,"step":3,"intermediate_value":NaN}"#,
            r#"{"op_code":6,"worker_id":"w1","trial_id":0,"state":1,"values":[-Infinity],"datetime_complete":"2026-01-01T00:01:00+00:00"}"#,
            r#"{"op_code":8,"worker_id":"w1","trial_id":0,"user_attr":{"late":1}}"#,
            r#"{"op_code":6,"worker_id":"w1","trial_id":0,"state":3,"values":null,"datetime_complete":"2026-01-01T00:02:00+00:00"}"#,
        ]);
        let t = &studies[0].trials[0];
        assert_eq!(t.state, TrialState::Complete);
        assert_eq!(*t.values, [f64::NEG_INFINITY]);
        assert_eq!(t.start, Some(1767225600.0));
        assert_eq!(t.duration(), Some(60.0));
        assert!(t.intermediate.get(3).unwrap().is_nan());
        assert!(t.user_attrs.is_empty());
    }

    #[test]
    fn a_param_whose_distribution_clashes_with_an_earlier_trials_is_dropped() {
        let cat = |choices: &str| {
            format!(
                r#"{{"op_code":5,"worker_id":"w","trial_id":TRIAL,"param_name":"opt","param_value_internal":0,"distribution":"{{\"name\": \"CategoricalDistribution\", \"attributes\": {{\"choices\": {choices}}}}}"}}"#
            )
        };
        let first = cat(r#"[\"adam\", \"sgd\"]"#).replace("TRIAL", "0");
        let clash = cat(r#"[\"sgd\"]"#).replace("TRIAL", "1");
        let studies = replay(&[
            r#"{"op_code":0,"worker_id":"w","study_name":"a","directions":[1]}"#,
            r#"{"op_code":4,"worker_id":"w","study_id":0,"datetime_start":null}"#,
            r#"{"op_code":4,"worker_id":"w","study_id":0,"datetime_start":null}"#,
            &first,
            &clash,
        ]);
        assert_eq!(studies[0].trials[0].params.get("opt").unwrap(), "adam");
        assert!(studies[0].trials[1].params.is_empty());
    }

    #[test]
    fn a_read_in_small_pieces_equals_one_read() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/optuna/v5.journal");
        let data = std::fs::read(&path).unwrap();
        let mut r = JournalReader::open(&path).unwrap();
        // Shorter than most lines: each piece grows until a line fits.
        r.piece = 100;
        let (studies, warnings) = load(&mut r);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(r.offset, data.len() as u64);
        let json = |s: &[Study]| -> Vec<Value> {
            s.iter()
                .map(|s| crate::trials::report::study_json("", s, &s.trials))
                .collect()
        };
        assert_eq!(json(&studies), json(&replay_bytes(&data, data.len()).0));
    }

    #[test]
    fn appended_lines_are_read_from_the_saved_offset_and_a_replaced_file_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let create = r#"{"op_code":0,"worker_id":"w","study_name":"a","directions":[1]}"#;
        let trial = r#"{"op_code":4,"worker_id":"w","study_id":0,"datetime_start":null}"#;
        std::fs::write(&path, format!("{create}\n{trial}\n")).unwrap();
        let mut r = JournalReader::open(&path).unwrap();
        assert_eq!(load(&mut r).0[0].trials.len(), 1);
        assert!(!r.read_new().unwrap(), "nothing new");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, format!("{trial}\n{}", &trial[..10]).as_bytes()).unwrap();
        assert_eq!(load(&mut r).0[0].trials.len(), 2);
        std::io::Write::write_all(&mut f, format!("{}\n", &trial[10..]).as_bytes()).unwrap();
        assert_eq!(load(&mut r).0[0].trials.len(), 3);
        // Replaced by a new study file (a new inode): read again from the start, and say so.
        let tmp = dir.path().join("new");
        std::fs::write(&tmp, format!("{create}\n")).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let (studies, warnings) = load(&mut r);
        assert!(studies[0].trials.is_empty());
        assert!(warnings[0].contains("replaced"), "{warnings:?}");
    }
}
