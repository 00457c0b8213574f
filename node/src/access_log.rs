//! The access log: every read of a resident's records by an operator
//! (explain, export, erasure, a correction, a badge issuance, and reading
//! the log itself) appends one entry,
//! durably, before the answer leaves the node. The issuances decided
//! together are appended together ([`AccessLog::append_all`]). Entries are hash-chained, so
//! removing, editing or reordering one is detected by [`verify`].
//!
//! The log lives in its own sled tree ([`TREE`]) of the node's database:
//!
//! | key | value |
//! | --- | --- |
//! | `e` ‖ u64-BE sequence | the stored entry ([`Entry::encode`]) |
//! | `s` ‖ subject (32) ‖ u64-BE sequence | nothing (a resident's entries) |
//! | `h` | the head: u64-BE length ‖ hash of the last entry (32) |
//!
//! An entry's hash is SHA-256 over `lp("tessera/access-log/v1")` followed by
//! the entry's body (see [`Entry::body`] and docs/PROTOCOL.md, "Access
//! log"), where `lp(x)` is `u32-BE(len(x)) ‖ x`.

use std::sync::Mutex;

mod copy;

use sha2::{Digest, Sha256};

use crate::pseudonym::Pseudonym;

/// The sled tree the log is kept in.
pub const TREE: &str = "access-log";

/// The domain string every entry hash starts with.
pub const DOMAIN: &[u8] = b"tessera/access-log/v1";

/// The format byte in front of every stored entry.
const FORMAT: u8 = 1;

const ENTRY: u8 = b'e';
const SUBJECT: u8 = b's';
const HEAD: &[u8] = b"h";

/// What an operator read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An explanation of the resident's score.
    Explain,
    /// Every record held about the resident.
    Export,
    /// The resident's access-log entries.
    AccessLog,
    /// An erasure of the resident.
    Erase,
    /// A correction or retraction of one of the resident's records.
    Correct,
    /// A badge issued (or asked for): the badge's colour tells something
    /// of the resident's records.
    Issue,
}

impl Action {
    /// The name written into the entry and its hash.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Explain => "explain",
            Self::Export => "export",
            Self::AccessLog => "access_log",
            Self::Erase => "erase",
            Self::Correct => "correct",
            Self::Issue => "issue",
        }
    }

    /// Reads a name written by [`Action::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Explain,
            Self::Export,
            Self::AccessLog,
            Self::Erase,
            Self::Correct,
            Self::Issue,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// Who read: read from the caller's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The certificate's serial number, lower-case hex.
    pub serial: String,
    /// The city code the certificate is scoped to.
    pub city: u32,
}

/// A read to log: what [`AccessLog::append_all`] numbers, links and
/// writes.
#[derive(Debug, Clone, Copy)]
pub struct Read<'a> {
    /// When (Unix seconds).
    pub at: i64,
    /// What was read.
    pub action: Action,
    /// Who read.
    pub actor: &'a Actor,
    /// Whose records.
    pub subject: &'a Pseudonym,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log, from 1, without gaps.
    pub sequence: u64,
    /// When (Unix seconds).
    pub at: i64,
    /// What was read.
    pub action: Action,
    /// Who read.
    pub actor: Actor,
    /// The hash of the entry before (32 zero bytes for the first).
    pub previous_hash: [u8; 32],
    /// Whose records were read: the resident's pseudonym.
    pub subject: Pseudonym,
    /// The entry's hash as stored ([`Entry::compute_hash`] when intact).
    pub hash: [u8; 32],
}

fn put_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every length-prefixed field is far below 4 GiB (checked on append).
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a stored entry field by field, refusing anything short or extra.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }
    fn lp(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.array()?);
        self.take(usize::try_from(len).ok()?)
    }
}

/// The most bytes an actor serial may have (a certificate serial is at most
/// 20 bytes, 40 hex digits).
const MAX_SERIAL: usize = 64;

impl Entry {
    /// The body the hash covers after the domain string:
    ///
    /// ```text
    /// u64-BE(sequence) ‖ i64-BE(at) ‖ lp(action) ‖ lp(actor_serial) ‖
    /// u32-BE(actor_city) ‖ lp(previous_hash) ‖ lp(subject)
    /// ```
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 8 + 4 + 10 + 4 + 40 + 4 + 4 + 32 + 4 + 32);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.at.to_be_bytes());
        put_lp(&mut out, self.action.as_str().as_bytes());
        put_lp(&mut out, self.actor.serial.as_bytes());
        out.extend_from_slice(&self.actor.city.to_be_bytes());
        put_lp(&mut out, &self.previous_hash);
        put_lp(&mut out, self.subject.as_bytes());
        out
    }

    /// SHA-256 over `lp(DOMAIN) ‖ body`.
    pub fn compute_hash(&self) -> [u8; 32] {
        let mut prefix = Vec::with_capacity(4 + DOMAIN.len());
        put_lp(&mut prefix, DOMAIN);
        let mut h = Sha256::new();
        h.update(&prefix);
        h.update(self.body());
        h.finalize().into()
    }

    /// The stored form: a format byte, the body, the hash.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        out.extend_from_slice(&self.body());
        out.extend_from_slice(&self.hash);
        out
    }

    /// Reads the stored form; `None` if it is not exactly one entry.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.take(1)? != [FORMAT] {
            return None;
        }
        let sequence = u64::from_be_bytes(r.array()?);
        let at = i64::from_be_bytes(r.array()?);
        let action = Action::parse(std::str::from_utf8(r.lp()?).ok()?)?;
        let serial = std::str::from_utf8(r.lp()?).ok()?.to_owned();
        let city = u32::from_be_bytes(r.array()?);
        let previous_hash = r.lp()?.try_into().ok()?;
        let subject = Pseudonym::from_slice(r.lp()?)?;
        let hash = r.array()?;
        if !r.0.is_empty() {
            return None;
        }
        Some(Self {
            sequence,
            at,
            action,
            actor: Actor { serial, city },
            previous_hash,
            subject,
            hash,
        })
    }

    /// The entry as the AccessLog RPC returns it.
    pub fn to_proto(&self) -> tessera_proto::v1::AccessEntry {
        tessera_proto::v1::AccessEntry {
            sequence: self.sequence,
            at: self.at,
            action: self.action.as_str().to_owned(),
            actor_serial: self.actor.serial.clone(),
            actor_city: self.actor.city,
            previous_hash: self.previous_hash.to_vec(),
            hash: self.hash.to_vec(),
        }
    }
}

/// The log's head: how many entries it has and the last one's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Entries in the log.
    pub length: u64,
    /// The last entry's hash (32 zero bytes for an empty log).
    pub hash: [u8; 32],
}

impl Head {
    const EMPTY: Head = Head {
        length: 0,
        hash: [0; 32],
    };

    fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.length.to_be_bytes());
        out[8..].copy_from_slice(&self.hash);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let length = u64::from_be_bytes(r.array()?);
        let hash = r.array()?;
        r.0.is_empty().then_some(Self { length, hash })
    }
}

/// Why the log could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AccessLogError {
    /// sled failed.
    #[error("access log storage: {0}")]
    Sled(#[from] sled::Error),
    /// The stored log does not hold together; nothing is appended to it
    /// until an operator has looked.
    #[error(
        "the access log is damaged ({0}); reads of residents' records are refused until it is \
         repaired: stop the node and run `tessera node verify-access-log`"
    )]
    Damaged(String),
    /// The entry could not be made durable.
    #[error("access log flush: {0}")]
    Flush(String),
    /// An actor serial too long to be a certificate serial.
    #[error("actor serial of {0} bytes is too long")]
    SerialTooLong(usize),
}

fn entry_key(sequence: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = ENTRY;
    k[1..].copy_from_slice(&sequence.to_be_bytes());
    k
}

fn subject_key(subject: &Pseudonym, sequence: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 32 + 8);
    k.push(SUBJECT);
    k.extend_from_slice(subject.as_bytes());
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

/// The stored head, checked against the last stored entry.
fn load_head(tree: &sled::Tree) -> Result<Head, AccessLogError> {
    let stored = match tree.get(HEAD)? {
        None => None,
        Some(v) => Some(
            Head::decode(&v)
                .ok_or_else(|| AccessLogError::Damaged("the head is corrupt".into()))?,
        ),
    };
    let last = match tree.scan_prefix([ENTRY]).next_back() {
        None => None,
        Some(kv) => {
            let (_, v) = kv?;
            let e = Entry::decode(&v)
                .ok_or_else(|| AccessLogError::Damaged("the last entry is corrupt".into()))?;
            Some(Head {
                length: e.sequence,
                hash: e.hash,
            })
        }
    };
    match (stored, last) {
        (None, None) => Ok(Head::EMPTY),
        (Some(head), Some(last)) if head == last => Ok(head),
        (Some(head), last) => Err(AccessLogError::Damaged(format!(
            "the head records {} entries but the last stored entry is {}",
            head.length,
            last.map_or(0, |l| l.length)
        ))),
        (None, Some(last)) => Err(AccessLogError::Damaged(format!(
            "entries up to {} are stored but no head",
            last.length
        ))),
    }
}

/// The node's access log.
pub struct AccessLog {
    tree: sled::Tree,
    /// The head, or why the log cannot be appended to. Held while an entry
    /// is numbered, linked and written, so entries never fork.
    head: Mutex<Result<Head, AccessLogError>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
}

impl AccessLog {
    /// The log kept in `tree`. A damaged log opens (the node still issues
    /// badges and answers status checks), but every append is refused.
    pub fn open(tree: sled::Tree) -> Result<Self, AccessLogError> {
        let head = match load_head(&tree) {
            Err(AccessLogError::Sled(e)) => return Err(AccessLogError::Sled(e)),
            other => other,
        };
        if let Err(e) = &head {
            tracing::error!(error = %e, "access log");
        }
        Ok(Self {
            tree,
            head: Mutex::new(head),
        })
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, Result<Head, AccessLogError>> {
        // The head is replaced whole only after its entry is written: a
        // poisoned lock's value is still sound.
        self.head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends an entry, not yet durably: [`AccessLog::record`] is what a
    /// handler calls.
    pub fn append(
        &self,
        at: i64,
        action: Action,
        actor: &Actor,
        subject: &Pseudonym,
    ) -> Result<Entry, AccessLogError> {
        let mut entries = self.append_all(&[Read {
            at,
            action,
            actor,
            subject,
        }])?;
        entries
            .pop()
            .ok_or_else(|| AccessLogError::Damaged("an append returned no entry".into()))
    }

    /// Appends one entry per read, in order, in one atomic write (the
    /// entries, their index keys and the new head in one batch), not yet
    /// durably: the caller makes it durable (a flush of the database)
    /// before it answers any of the reads. Either every entry is written
    /// or none is.
    pub fn append_all(&self, reads: &[Read<'_>]) -> Result<Vec<Entry>, AccessLogError> {
        if let Some(long) = reads.iter().find(|r| r.actor.serial.len() > MAX_SERIAL) {
            return Err(AccessLogError::SerialTooLong(long.actor.serial.len()));
        }
        let mut head = self.locked();
        let mut next = *head.as_ref().map_err(Clone::clone)?;
        let mut entries = Vec::with_capacity(reads.len());
        let mut batch = sled::Batch::default();
        for read in reads {
            let mut entry = Entry {
                sequence: next.length + 1,
                at: read.at,
                action: read.action,
                actor: read.actor.clone(),
                previous_hash: next.hash,
                subject: *read.subject,
                hash: [0; 32],
            };
            entry.hash = entry.compute_hash();
            next = Head {
                length: entry.sequence,
                hash: entry.hash,
            };
            batch.insert(&entry_key(entry.sequence), entry.encode());
            batch.insert(subject_key(read.subject, entry.sequence), &[][..]);
            entries.push(entry);
        }
        if entries.is_empty() {
            return Ok(entries);
        }
        batch.insert(HEAD, &next.encode()[..]);
        self.tree.apply_batch(batch)?;
        *head = Ok(next);
        Ok(entries)
    }

    /// Appends an entry and returns once it is durable. A caller that gets
    /// an error must not answer the read.
    pub async fn record(
        &self,
        at: i64,
        action: Action,
        actor: &Actor,
        subject: &Pseudonym,
    ) -> Result<Entry, AccessLogError> {
        let entry = self.append(at, action, actor, subject)?;
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || tree.flush())
            .await
            .map_err(|e| AccessLogError::Flush(e.to_string()))?
            .map_err(|e| AccessLogError::Flush(e.to_string()))?;
        Ok(entry)
    }

    /// The head as last appended.
    pub fn head(&self) -> Result<Head, AccessLogError> {
        self.locked().as_ref().map(|h| *h).map_err(Clone::clone)
    }

    /// Every entry about `subject`, oldest first, found through the subject
    /// index (the log is not scanned).
    pub fn entries_of(&self, subject: &Pseudonym) -> Result<Vec<Entry>, AccessLogError> {
        let mut prefix = vec![SUBJECT];
        prefix.extend_from_slice(subject.as_bytes());
        let mut out = vec![];
        for key in self.tree.scan_prefix(&prefix).keys() {
            let key = key?;
            let sequence = key
                .get(prefix.len()..)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| AccessLogError::Damaged("a subject index key is corrupt".into()))?;
            let entry = self
                .tree
                .get(entry_key(sequence))?
                .and_then(|v| Entry::decode(&v))
                .filter(|e| e.sequence == sequence && e.subject == *subject)
                .ok_or_else(|| {
                    AccessLogError::Damaged(format!(
                        "the subject index names entry {sequence}, which is missing or not theirs"
                    ))
                })?;
            out.push(entry);
        }
        Ok(out)
    }
}

/// What a resident's app checks in an `AccessLogResponse`, with nothing
/// but the response: every entry's hash recomputes over its fields and the
/// subject, entries of consecutive sequence numbers link (the later one's
/// `previous_hash` is the earlier one's hash), and the last entry is the
/// head the node reported (the AccessLog read logs itself last). Returns
/// the actions, oldest first; `Err` names the first entry that fails.
pub fn check_response(
    response: &tessera_proto::v1::AccessLogResponse,
) -> Result<Vec<Action>, String> {
    let subject = Pseudonym::from_slice(&response.subject)
        .ok_or_else(|| format!("the subject has {} bytes, not 32", response.subject.len()))?;
    let mut actions = vec![];
    let mut before: Option<(u64, [u8; 32])> = None;
    for p in &response.entries {
        let n = p.sequence;
        let entry = Entry {
            sequence: n,
            at: p.at,
            action: Action::parse(&p.action)
                .ok_or_else(|| format!("entry {n}: unknown action {:?}", p.action))?,
            actor: Actor {
                serial: p.actor_serial.clone(),
                city: p.actor_city,
            },
            previous_hash: p
                .previous_hash
                .as_slice()
                .try_into()
                .map_err(|_| format!("entry {n}: previous_hash is not 32 bytes"))?,
            subject,
            hash: p
                .hash
                .as_slice()
                .try_into()
                .map_err(|_| format!("entry {n}: hash is not 32 bytes"))?,
        };
        if entry.compute_hash() != entry.hash {
            return Err(format!("entry {n}: its hash does not match its fields"));
        }
        match before {
            Some((m, _)) if m >= n => {
                return Err(format!("entry {n} comes after entry {m}"));
            }
            Some((m, hash)) if m + 1 == n && entry.previous_hash != hash => {
                return Err(format!("entry {n} does not link to entry {m}"));
            }
            _ => {}
        }
        before = Some((n, entry.hash));
        actions.push(entry.action);
    }
    match before {
        Some((n, hash)) if n == response.length && hash.as_slice() == response.head_hash => {
            Ok(actions)
        }
        Some((n, _)) => Err(format!(
            "the last entry ({n}) is not the head the node reported (length {})",
            response.length
        )),
        None => Err("no entry: the read of the log itself is missing".into()),
    }
}

/// An entry a verifier was told to expect, kept outside the node (a hash
/// printed by an earlier verification, or one a resident's app kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The entry's sequence.
    pub sequence: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

impl std::str::FromStr for Checkpoint {
    type Err = String;

    /// Reads `SEQUENCE:HASH` (the hash as 64 hex digits).
    fn from_str(s: &str) -> Result<Self, String> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or("expected SEQUENCE:HASH, e.g. 42:9f86d0…")?;
        let sequence = seq
            .trim()
            .parse()
            .map_err(|_| format!("{seq:?} is not a sequence number"))?;
        let hash = hex::decode(hash.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("the hash must be 64 hex digits")?;
        Ok(Self { sequence, hash })
    }
}

/// The first thing wrong with a log, by sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The bytes stored as entry N are not an entry.
    #[error("entry {sequence}: its stored bytes are not an entry (edited or corrupt)")]
    Undecodable {
        /// Where.
        sequence: u64,
    },
    /// Entry N's hash does not match its fields.
    #[error("entry {sequence}: hash mismatch, its fields were edited")]
    HashMismatch {
        /// Where.
        sequence: u64,
    },
    /// The entry stored at position N says it is entry M.
    #[error("entry {sequence}: the entry stored here says it is entry {found} (entries moved)")]
    Misplaced {
        /// Where.
        sequence: u64,
        /// What it says.
        found: u64,
    },
    /// Entry N is missing: the log jumps from N-1 to a later entry.
    #[error("entry {sequence}: missing (removed); the next stored entry is {next}")]
    Missing {
        /// The first missing sequence.
        sequence: u64,
        /// The next one stored.
        next: u64,
    },
    /// Entry N does not link to entry N-1.
    #[error("entry {sequence}: broken link, its previous_hash is not entry {}'s hash", sequence - 1)]
    BrokenLink {
        /// Where.
        sequence: u64,
    },
    /// Entry N is not in its subject's index (hidden from the resident).
    #[error("entry {sequence}: missing from the subject index (hidden from the resident)")]
    NotIndexed {
        /// Where.
        sequence: u64,
    },
    /// The subject index names entry N, which is missing or someone else's.
    #[error("entry {sequence}: named by the subject index of another resident or absent")]
    BadIndex {
        /// Where.
        sequence: u64,
    },
    /// The head kept beside the log disagrees with its last entry.
    #[error(
        "head: records {head_length} entries ending in {}, but the log ends at entry {length}{}",
        hex::encode(head_hash),
        if length < head_length { " (the tail was truncated)" } else { "" }
    )]
    Head {
        /// Entries the head records.
        head_length: u64,
        /// The hash the head records.
        head_hash: [u8; 32],
        /// Entries found.
        length: u64,
    },
    /// The head is missing or corrupt although entries are stored.
    #[error("head: missing or corrupt although {length} entries are stored")]
    NoHead {
        /// Entries found.
        length: u64,
    },
    /// An expected entry is not in the log.
    #[error(
        "entry {sequence}: expected by the checkpoint but the log ends at {length} (truncated)"
    )]
    CheckpointMissing {
        /// The checkpoint's sequence.
        sequence: u64,
        /// Entries found.
        length: u64,
    },
    /// An expected entry has another hash.
    #[error("entry {sequence}: its hash differs from the checkpoint (the log was rewritten)")]
    CheckpointMismatch {
        /// The checkpoint's sequence.
        sequence: u64,
    },
}

impl Problem {
    /// The sequence number the problem is at (0 for the head).
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Undecodable { sequence }
            | Self::HashMismatch { sequence }
            | Self::Misplaced { sequence, .. }
            | Self::Missing { sequence, .. }
            | Self::BrokenLink { sequence }
            | Self::NotIndexed { sequence }
            | Self::BadIndex { sequence }
            | Self::CheckpointMissing { sequence, .. }
            | Self::CheckpointMismatch { sequence } => *sequence,
            Self::Head { .. } | Self::NoHead { .. } => 0,
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries stored.
    pub length: u64,
    /// The last stored entry's hash as stored (zeros for an empty log).
    pub head_hash: [u8; 32],
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// Walks the whole log in `tree` and reports the first problem: every entry
/// in order (decodes, sits at its own sequence, hash, link to the one
/// before, indexed under its subject), then the head against the last entry
/// (a truncated tail), then every subject index key (names an entry of that
/// subject), and `expect` last.
pub fn verify(tree: &sled::Tree, expect: Option<Checkpoint>) -> Result<Report, sled::Error> {
    let mut length = 0u64;
    let mut head_hash = [0u8; 32];
    let mut problem = None;
    let mut previous = [0u8; 32];
    let mut expected = 1u64;
    for kv in tree.scan_prefix([ENTRY]) {
        let (key, value) = kv?;
        length += 1;
        let at = key
            .get(1..)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_be_bytes);
        let entry = Entry::decode(&value);
        head_hash = entry.as_ref().map_or([0; 32], |e| e.hash);
        if problem.is_some() {
            continue;
        }
        let Some(at) = at else {
            problem = Some(Problem::Undecodable { sequence: expected });
            continue;
        };
        if at != expected {
            problem = Some(Problem::Missing {
                sequence: expected,
                next: at,
            });
            continue;
        }
        expected += 1;
        let Some(entry) = entry else {
            problem = Some(Problem::Undecodable { sequence: at });
            continue;
        };
        problem = if entry.sequence != at {
            Some(Problem::Misplaced {
                sequence: at,
                found: entry.sequence,
            })
        } else if entry.compute_hash() != entry.hash {
            Some(Problem::HashMismatch { sequence: at })
        } else if entry.previous_hash != previous {
            Some(Problem::BrokenLink { sequence: at })
        } else if !tree.contains_key(subject_key(&entry.subject, at))? {
            Some(Problem::NotIndexed { sequence: at })
        } else {
            None
        };
        previous = entry.hash;
    }
    if problem.is_none() {
        problem = match tree.get(HEAD)?.and_then(|v| Head::decode(&v)) {
            None if length > 0 => Some(Problem::NoHead { length }),
            None => None,
            Some(head) if head.length != length || head.hash != head_hash => Some(Problem::Head {
                head_length: head.length,
                head_hash: head.hash,
                length,
            }),
            Some(_) => None,
        };
    }
    if problem.is_none() {
        problem = check_index(tree)?;
    }
    if problem.is_none()
        && let Some(c) = expect
    {
        problem = match tree
            .get(entry_key(c.sequence))?
            .and_then(|v| Entry::decode(&v))
        {
            None => Some(Problem::CheckpointMissing {
                sequence: c.sequence,
                length,
            }),
            Some(e) if e.hash != c.hash => Some(Problem::CheckpointMismatch {
                sequence: c.sequence,
            }),
            Some(_) => None,
        };
    }
    Ok(Report {
        length,
        head_hash,
        problem,
    })
}

/// Every subject index key must name an entry of that subject.
fn check_index(tree: &sled::Tree) -> Result<Option<Problem>, sled::Error> {
    for key in tree.scan_prefix([SUBJECT]).keys() {
        let key = key?;
        let parsed = (key.len() == 1 + 32 + 8)
            .then(|| {
                let subject = Pseudonym::from_slice(&key[1..33])?;
                let seq = u64::from_be_bytes(key[33..].try_into().ok()?);
                Some((subject, seq))
            })
            .flatten();
        let Some((subject, sequence)) = parsed else {
            return Ok(Some(Problem::BadIndex { sequence: 0 }));
        };
        let theirs = tree
            .get(entry_key(sequence))?
            .and_then(|v| Entry::decode(&v))
            .is_some_and(|e| e.subject == subject);
        if !theirs {
            return Ok(Some(Problem::BadIndex { sequence }));
        }
    }
    Ok(None)
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
