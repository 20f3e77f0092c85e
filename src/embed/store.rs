//! The vectors of a project's sections, beside its index: `vectors-<model>.bin` in the
//! data dir, one file per model (another model's vectors are never read as this
//! one's), keyed by the section's content so that a section embedded once is never
//! embedded again while its text stays the same.
//!
//! The file is a 16-byte header (`DSVEC`, version, dimensions) and then records of a
//! 16-byte key, an `f32` scale, one signed byte per dimension (the vector divided by the
//! scale: `max |x| / 127`) and a checksum. Records are only appended, by a writer
//! holding `.vectors.lock` (the index's flock discipline), and read by anyone at any
//! time: a reader stops at the first incomplete or damaged record, and the next writer
//! cuts such a tail off (a process killed mid-write) before it appends. Compaction
//! writes the live records to a new file and renames it over the old one; readers see
//! the new inode and read it again.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use doc_serve_kernels::ann::{dot, quantize};

/// A section's content key (see [`key_of`]).
pub type Key = [u8; 16];

const MAGIC: &[u8; 6] = b"DSVEC\x01";
const HEADER: usize = 16;

/// The key of the text a section is embedded from.
pub fn key_of(text: &str) -> Key {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The text a section is embedded from: its title, heading trail (below the title)
/// and body.
pub fn section_text(title: &str, headings: &[String], body: &str) -> String {
    let mut text = String::with_capacity(title.len() + body.len() + 64);
    text.push_str(title);
    for h in headings {
        text.push_str(if text.is_empty() { "" } else { " > " });
        text.push_str(h);
    }
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(body);
    text
}

/// Opens the store's file (creating it 0600 for `write`): a regular file only, never
/// through a symlink (writing would truncate whatever it leads to) and without
/// blocking (a FIFO put there).
fn open_regular(path: &Path, write: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .create(write)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::other(
                "it is a symbolic link; the store must be a regular file: remove it",
            ),
            _ => e,
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(
            "not a regular file; the store must be one: remove it",
        ));
    }
    Ok(file)
}

/// FNV-1a: a record's checksum, stable across builds.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {what} {}: {cause}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("the vector store is busy: another writer held {} for {timeout:?}", path.display())]
    Busy { path: PathBuf, timeout: Duration },
    /// Not a store of this model's dimensions (a damaged header): the next writer
    /// begins it again.
    #[error("{} is not a vector store of this model's dimensions", path.display())]
    Unusable { path: PathBuf },
}

pub struct Store {
    path: PathBuf,
    lock: PathBuf,
    dim: usize,
    /// False for a writer's copy: keys only, no vectors in memory.
    vectors: bool,
    rows: HashMap<Key, u32>,
    keys: Vec<Key>,
    scales: Vec<f32>,
    data: Vec<i8>,
    /// The file (device, inode) read, and how far.
    file_id: Option<(u64, u64)>,
    read_to: u64,
    /// Counts the times the store was read again from the start (a new file, a
    /// compaction): rows of one epoch are rows of the next only if it is the same.
    epoch: u64,
}

impl Store {
    /// The store of the model `fingerprint` in `data_dir`, as far as it is written
    /// (nothing is created until [`Store::append`]).
    pub fn open(data_dir: &Path, fingerprint: &str, dim: usize) -> Store {
        Store::open_as(data_dir, fingerprint, dim, true)
    }

    /// As [`Store::open`], keeping only which keys it holds: what a writer needs.
    pub fn open_keys(data_dir: &Path, fingerprint: &str, dim: usize) -> Store {
        Store::open_as(data_dir, fingerprint, dim, false)
    }

    fn open_as(data_dir: &Path, fingerprint: &str, dim: usize, vectors: bool) -> Store {
        let mut store = Store {
            path: data_dir.join(format!("vectors-{fingerprint}.bin")),
            lock: data_dir.join(".vectors.lock"),
            dim,
            vectors,
            rows: HashMap::new(),
            keys: Vec::new(),
            scales: Vec::new(),
            data: Vec::new(),
            file_id: None,
            read_to: 0,
            epoch: 0,
        };
        match store.refresh() {
            Err(e @ StoreError::Unusable { .. }) => {
                tracing::warn!("{e}; its vectors are made again");
            }
            Err(e) => tracing::warn!("{e}"),
            Ok(()) => {}
        }
        store
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    fn record_len(&self) -> usize {
        16 + 4 + self.dim + 4
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.rows.contains_key(key)
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.keys.clear();
        self.scales.clear();
        self.data.clear();
        self.file_id = None;
        self.read_to = 0;
        self.epoch += 1;
    }

    /// See the `epoch` field.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Every vector held (key, scale, bytes), in the order stored; none for a
    /// keys-only copy.
    pub fn rows(&self) -> impl Iterator<Item = (Key, f32, &[i8])> {
        let dim = self.dim.max(1);
        self.keys
            .iter()
            .zip(&self.scales)
            .zip(self.data.chunks_exact(dim))
            .map(|((k, s), v)| (*k, *s, v))
    }

    /// Whether the file changed since it was read (one `stat`).
    pub fn stale(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino())) != self.file_id || m.len() != self.read_to,
            Err(_) => self.file_id.is_some(),
        }
    }

    /// Reads what others appended since the last read (the whole file again when it
    /// was replaced). Cheap when nothing changed: one `stat`.
    pub fn refresh(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |what, cause| StoreError::Io {
            what,
            path: path.clone(),
            cause,
        };
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.clear();
                return Ok(());
            }
            Err(e) => return Err(err("read", e)),
        };
        let id = Some((meta.dev(), meta.ino()));
        if id != self.file_id || meta.len() < self.read_to {
            self.clear();
        }
        if meta.len() == self.read_to {
            return Ok(());
        }
        let mut file = open_regular(&self.path, false).map_err(|e| err("read", e))?;
        let mut at = 0;
        if self.read_to == 0 {
            // The header first: a file that is not a store is not read whole.
            let mut header = [0; HEADER];
            match file.read_exact(&mut header) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(err("read", e)),
                Ok(()) => {}
            }
            if !self.header_fits(&header) {
                return Err(StoreError::Unusable { path });
            }
            at = HEADER;
        }
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(self.read_to + at as u64))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| err("read", e))?;
        self.file_id = id;
        let n = self.record_len();
        let mut read = 0;
        while let Some(record) = bytes.get(read..read + n) {
            if !self.take(record) {
                break;
            }
            read += n;
        }
        self.read_to += (at + read) as u64;
        Ok(())
    }

    /// Cuts off what follows the last whole record (a writer killed mid-record,
    /// garbage appended), under the store's lock; true when there was something. Until
    /// then every look at the store finds it changed.
    pub fn cut_damaged_tail(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        if !self.stale() {
            return Ok(false);
        }
        self.append(&[], timeout)?;
        Ok(true)
    }

    fn header(&self) -> [u8; HEADER] {
        let mut h = [0; HEADER];
        h[..6].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&(self.dim as u32).to_le_bytes());
        h
    }

    fn header_fits(&self, bytes: &[u8]) -> bool {
        bytes == self.header()
    }

    /// Takes in one record; false when it is damaged.
    fn take(&mut self, record: &[u8]) -> bool {
        let (body, sum) = record.split_at(record.len() - 4);
        if checksum(body).to_le_bytes() != sum {
            return false;
        }
        let mut key = [0; 16];
        key.copy_from_slice(&body[..16]);
        let scale = f32::from_le_bytes([body[16], body[17], body[18], body[19]]);
        if self.rows.contains_key(&key) || !scale.is_finite() {
            return true;
        }
        self.rows.insert(key, self.keys.len() as u32);
        self.keys.push(key);
        if self.vectors {
            self.scales.push(scale);
            self.data.extend(body[20..].iter().map(|&b| b as i8));
        }
        true
    }

    fn encode(&self, key: &Key, vector: &[f32], out: &mut Vec<u8>) {
        let start = out.len();
        let (bytes, scale) = quantize(vector);
        out.extend_from_slice(key);
        out.extend_from_slice(&scale.to_le_bytes());
        out.extend(bytes.iter().map(|b| *b as u8));
        let sum = checksum(&out[start..]);
        out.extend_from_slice(&sum.to_le_bytes());
    }

    fn locked(&self, timeout: Duration) -> Result<crate::flock::FileLock, StoreError> {
        match crate::flock::lock_fair_within(&self.lock, timeout) {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(StoreError::Busy {
                path: self.lock.clone(),
                timeout,
            }),
            Err(cause) => Err(StoreError::Io {
                what: "lock",
                path: self.lock.clone(),
                cause,
            }),
        }
    }

    /// Appends `vectors` (of this store's dimensions) under the store's lock, after
    /// reading what others appended and cutting off a damaged tail; a key already
    /// stored is not stored again.
    pub fn append(
        &mut self,
        vectors: &[(Key, Vec<f32>)],
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let _lock = self.locked(timeout)?;
        match self.refresh() {
            // Begun again below.
            Err(StoreError::Unusable { .. }) => self.clear(),
            other => other?,
        }
        let path = self.path.clone();
        let err = |what, cause| StoreError::Io {
            what,
            path: path.clone(),
            cause,
        };
        let mut file = open_regular(&self.path, true).map_err(|e| err("open", e))?;
        let meta = file.metadata().map_err(|e| err("open", e))?;
        if self.read_to == 0 || self.file_id != Some((meta.dev(), meta.ino())) {
            // New, empty, or of no use (another layout, a damaged header): begun again.
            file.set_len(0).map_err(|e| err("write", e))?;
            file.write_all(&self.header())
                .map_err(|e| err("write", e))?;
            self.clear();
            self.file_id = Some((meta.dev(), meta.ino()));
            self.read_to = HEADER as u64;
        } else if meta.len() > self.read_to {
            // A writer died mid-record: what it left is cut off.
            file.set_len(self.read_to).map_err(|e| err("write", e))?;
        }
        // Keys another writer stored meanwhile (read above, under the lock) are not
        // stored twice: two embedders of one data dir (a resident serving again in
        // place while its old embedder finishes a batch) embed the same sections.
        let mut bytes = Vec::with_capacity(vectors.len() * self.record_len());
        let mut fresh = HashSet::new();
        for (key, v) in vectors.iter().filter(|(key, v)| {
            v.len() == self.dim && !self.rows.contains_key(key) && fresh.insert(*key)
        }) {
            self.encode(key, v, &mut bytes);
        }
        file.seek(SeekFrom::Start(self.read_to))
            .and_then(|_| file.write_all(&bytes))
            .and_then(|_| file.sync_data())
            .map_err(|e| {
                // Whatever part went in is cut off by the next writer.
                err("write", e)
            })?;
        let n = self.record_len();
        for record in bytes.chunks_exact(n) {
            self.take(record);
        }
        self.read_to += bytes.len() as u64;
        Ok(())
    }

    /// Rewrites the store with only the `live` keys' vectors, when the others are more
    /// than a quarter of it (sections edited or deleted). Returns whether it did.
    pub fn compact(&mut self, live: &HashSet<Key>, timeout: Duration) -> Result<bool, StoreError> {
        let dead = self.keys.iter().filter(|k| !live.contains(*k)).count();
        if dead == 0 || dead * 4 < self.keys.len() {
            return Ok(false);
        }
        let _lock = self.locked(timeout)?;
        self.refresh()?;
        let n = self.record_len();
        let old = std::fs::read(&self.path).map_err(|cause| StoreError::Io {
            what: "compact",
            path: self.path.clone(),
            cause,
        })?;
        let mut bytes = self.header().to_vec();
        let end = (self.read_to as usize).min(old.len());
        let mut seen = HashSet::new();
        for record in old.get(HEADER..end).unwrap_or_default().chunks_exact(n) {
            let mut key = [0; 16];
            key.copy_from_slice(&record[..16]);
            if live.contains(&key) && seen.insert(key) {
                bytes.extend_from_slice(record);
            }
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        crate::fsutil::write_atomic(&dir.join(&name), &bytes, 0o600).map_err(|e| {
            StoreError::Io {
                what: "compact",
                path: self.path.clone(),
                cause: io::Error::other(e.to_string()),
            }
        })?;
        self.clear();
        self.refresh()?;
        Ok(true)
    }

    /// The `n` stored vectors nearest `query` (a unit vector), by cosine, best first
    /// (equal scores in the order they were stored, so that a longer list starts with
    /// a shorter one); each held key once, only those in `keep` when it is given.
    /// Exact: every vector is compared.
    pub fn nearest(&self, query: &[f32], n: usize, keep: Option<&HashSet<Key>>) -> Vec<(Key, f32)> {
        self.nearest_from(0, query, n, keep)
    }

    /// As [`Store::nearest`], over the vectors from row `first` on (those stored after
    /// the first `first`).
    pub fn nearest_from(
        &self,
        first: usize,
        query: &[f32],
        n: usize,
        keep: Option<&HashSet<Key>>,
    ) -> Vec<(Key, f32)> {
        if query.len() != self.dim || n == 0 || self.keys.len() <= first {
            return Vec::new();
        }
        let (q, qscale) = quantize(query);
        // The best so far, worst on top: a heap, so that a long list (a deep page, every
        // vector) costs n log n, not n².
        let mut best: BinaryHeap<Ranked> = BinaryHeap::with_capacity(n.min(self.keys.len()) + 1);
        for (row, v) in self.data.chunks_exact(self.dim).enumerate().skip(first) {
            if keep.is_some_and(|k| !k.contains(&self.keys[row])) {
                continue;
            }
            let dot: i32 = dot(&q, v);
            let candidate = Ranked(dot as f32 * qscale * self.scales[row], row as u32);
            if best.len() == n {
                match best.peek() {
                    Some(worst) if candidate < *worst => {
                        best.pop();
                    }
                    _ => continue,
                }
            }
            best.push(candidate);
        }
        best.into_sorted_vec()
            .into_iter()
            .map(|Ranked(s, row)| (self.keys[row as usize], s))
            .collect()
    }
}

/// A vector's score and row, ordered best first: a higher score, then an earlier row.
#[derive(Debug, Clone, Copy)]
struct Ranked(f32, u32);

impl Ord for Ranked {
    fn cmp(&self, other: &Ranked) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Ranked) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Ranked) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked {}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u32, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim)
            .map(|i| (((i as u32 + 1) * (seed + 7)) % 13) as f32 - 6.0)
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    #[test]
    fn appended_vectors_are_found_by_a_second_reader_and_survive_a_torn_tail() {
        let t = tempfile::tempdir().unwrap();
        let mut a = Store::open(t.path(), "m", 8);
        let vs: Vec<(Key, Vec<f32>)> = (0..5)
            .map(|i| (key_of(&i.to_string()), unit(i, 8)))
            .collect();
        a.append(&vs, Duration::from_secs(1)).unwrap();
        let mut b = Store::open(t.path(), "m", 8);
        assert_eq!(b.len(), 5);
        let top = b.nearest(&unit(3, 8), 1, None);
        assert_eq!(top[0].0, key_of("3"));
        assert!((top[0].1 - 1.0).abs() < 0.02, "{}", top[0].1);
        // A writer killed mid-record leaves half a record.
        let mut f = OpenOptions::new().append(true).open(a.path()).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        b.refresh().unwrap();
        assert_eq!(b.len(), 5);
        b.append(&[(key_of("x"), unit(9, 8))], Duration::from_secs(1))
            .unwrap();
        let c = Store::open(t.path(), "m", 8);
        assert_eq!(c.len(), 6, "the torn tail was cut, the new record read");
        // Two writers that embedded the same sections store them once.
        let before = std::fs::metadata(a.path()).unwrap().len();
        a.append(
            &[(key_of("x"), unit(9, 8)), (key_of("y"), unit(2, 8))],
            Duration::from_secs(1),
        )
        .unwrap();
        let record = (16 + 4 + 8 + 4) as u64;
        assert_eq!(std::fs::metadata(a.path()).unwrap().len(), before + record);
        // Another model's dimensions never read this file's vectors.
        let d = Store::open(t.path(), "m", 16);
        assert_eq!(d.len(), 0);
        // Garbage after the last record is cut off, even with nothing to append.
        let len = std::fs::metadata(a.path()).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(a.path()).unwrap();
        f.write_all(&[0xA5; 100]).unwrap();
        let mut e = Store::open_keys(t.path(), "m", 8);
        assert!(e.stale());
        assert!(e.cut_damaged_tail(Duration::from_secs(1)).unwrap());
        assert!(!e.stale());
        assert_eq!(std::fs::metadata(a.path()).unwrap().len(), len);
    }

    #[test]
    fn a_damaged_header_or_a_link_is_never_read_as_vectors() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("vectors-m.bin");
        // A damaged header: unusable, and begun again by the next writer.
        std::fs::write(&path, [0xA5; 4000]).unwrap();
        let mut a = Store::open(t.path(), "m", 8);
        assert!(matches!(a.refresh(), Err(StoreError::Unusable { .. })));
        a.append(&[(key_of("x"), unit(1, 8))], Duration::from_secs(1))
            .unwrap();
        assert_eq!(Store::open(t.path(), "m", 8).len(), 1);
        // A link: neither read nor written through.
        let target = t.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let mut b = Store::open(t.path(), "m", 8);
        assert_eq!(b.len(), 0);
        let e = b
            .append(&[(key_of("y"), unit(2, 8))], Duration::from_secs(1))
            .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    }

    #[test]
    fn a_longer_list_starts_with_a_shorter_one() {
        let t = tempfile::tempdir().unwrap();
        let mut a = Store::open(t.path(), "m", 8);
        // Seeds 13 apart give equal vectors: ties, broken by the order stored.
        let vs: Vec<(Key, Vec<f32>)> = (0..40)
            .map(|i| (key_of(&i.to_string()), unit(i, 8)))
            .collect();
        a.append(&vs, Duration::from_secs(1)).unwrap();
        let q = unit(3, 8);
        let all = a.nearest(&q, usize::MAX, None);
        assert_eq!(all.len(), 40);
        assert!(all.windows(2).all(|w| w[0].1 >= w[1].1));
        for n in [1, 3, 4, 17, 39] {
            assert_eq!(a.nearest(&q, n, None), all[..n], "{n}");
        }
        let keep: HashSet<Key> = vs.iter().step_by(3).map(|(k, _)| *k).collect();
        let kept: Vec<_> = all
            .iter()
            .filter(|(k, _)| keep.contains(k))
            .copied()
            .collect();
        assert_eq!(a.nearest(&q, 100, Some(&keep)), kept);
        assert_eq!(a.nearest(&q, 2, Some(&keep)), kept[..2]);
    }

    #[test]
    fn compaction_keeps_only_live_vectors() {
        let t = tempfile::tempdir().unwrap();
        let mut a = Store::open(t.path(), "m", 8);
        let vs: Vec<(Key, Vec<f32>)> = (0..8)
            .map(|i| (key_of(&i.to_string()), unit(i, 8)))
            .collect();
        a.append(&vs, Duration::from_secs(1)).unwrap();
        let mut reader = Store::open(t.path(), "m", 8);
        let live: HashSet<Key> = vs[..2].iter().map(|(k, _)| *k).collect();
        assert!(a.compact(&live, Duration::from_secs(1)).unwrap());
        assert_eq!(a.len(), 2);
        reader.refresh().unwrap();
        assert_eq!(reader.len(), 2, "a reader sees the rewritten file");
    }
}
