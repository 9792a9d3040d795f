//! The local checkpoint store: one JSON file per stream in the configured
//! directory, `<checkpoint_dir>/<stream_name>.checkpoint.json`, written
//! atomically (temporary file, `fsync`, rename, directory `fsync`), so a
//! crash leaves either the old or the new file, never a torn one.
//!
//! ```json
//! {
//!   "version": 1,
//!   "stream": "apigw-logs",
//!   "shards": {
//!     "shardId-000000000000": { "sequence_number": "4963…0002", "finished": true },
//!     "shardId-000000000001": { "sequence_number": "4963…0018", "finished": false },
//!     "shardId-000000000002": { "sequence_number": null, "finished": false }
//!   }
//! }
//! ```
//!
//! `sequence_number` is the last record of the shard that, with every record
//! before it, the pipeline acknowledged; reading resumes *after* it
//! (`AFTER_SEQUENCE_NUMBER`). `null` means the shard was started but nothing
//! was acknowledged yet. `finished` means the shard is closed and all its
//! records were acknowledged: it is never read again, and its children may
//! start. Deliberately absent: leases and coordination between instances —
//! one Tollgate instance owns a directory (DynamoDB leases are a later step).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's format version.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Checkpoints of every shard of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointFile {
    pub version: u32,
    pub stream: String,
    pub shards: BTreeMap<String, ShardCheckpoint>,
}

/// One shard's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardCheckpoint {
    /// Resume after this sequence number; `None`: nothing acknowledged yet.
    pub sequence_number: Option<String>,
    /// Closed and fully acknowledged: never read again.
    #[serde(default)]
    pub finished: bool,
}

impl CheckpointFile {
    pub fn empty(stream: &str) -> Self {
        CheckpointFile {
            version: CHECKPOINT_VERSION,
            stream: stream.to_owned(),
            shards: BTreeMap::new(),
        }
    }

    pub fn get(&self, shard: &str) -> Option<&ShardCheckpoint> {
        self.shards.get(shard)
    }

    pub fn is_finished(&self, shard: &str) -> bool {
        self.shards.get(shard).is_some_and(|c| c.finished)
    }
}

/// Why the checkpoint file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a checkpoint file for this stream. It is
    /// never silently replaced: starting over would re-read or skip data.
    #[error("checkpoint file {path} is unusable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Reads and writes one stream's checkpoint file.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    path: PathBuf,
    stream: String,
}

impl CheckpointStore {
    /// The store of `stream` in `dir` (created if missing).
    pub fn open(dir: &Path, stream: &str) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(CheckpointStore {
            dir: dir.to_owned(),
            path: dir.join(format!("{stream}.checkpoint.json")),
            stream: stream.to_owned(),
        })
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored checkpoints; an empty set when there is no file yet.
    pub fn load(&self) -> Result<CheckpointFile, CheckpointError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CheckpointFile::empty(&self.stream))
            }
            Err(source) => {
                return Err(CheckpointError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let corrupt = |reason: String| CheckpointError::Corrupt {
            path: self.path.clone(),
            reason,
        };
        let file: CheckpointFile =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.version != CHECKPOINT_VERSION {
            return Err(corrupt(format!("unknown version {}", file.version)));
        }
        if file.stream != self.stream {
            return Err(corrupt(format!(
                "written for stream {:?}, not {:?}",
                file.stream, self.stream
            )));
        }
        Ok(file)
    }

    /// Replaces the file atomically.
    pub fn save(&self, file: &CheckpointFile) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: self.path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec_pretty(file).expect("serializable");
        bytes.push(b'\n');
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        // Make the rename itself durable.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(&dir.path().join("sub"), "s1").unwrap();
        assert_eq!(store.load().unwrap(), CheckpointFile::empty("s1"));
        let mut f = CheckpointFile::empty("s1");
        f.shards.insert(
            "shardId-000000000000".into(),
            ShardCheckpoint {
                sequence_number: Some("4963".into()),
                finished: true,
            },
        );
        f.shards
            .insert("shardId-000000000001".into(), ShardCheckpoint::default());
        store.save(&f).unwrap();
        assert_eq!(store.load().unwrap(), f);
        assert!(store.load().unwrap().is_finished("shardId-000000000000"));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["s1.checkpoint.json"]);
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), "s1").unwrap();
        std::fs::write(store.path(), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(CheckpointError::Corrupt { .. })));
        let other = CheckpointStore::open(dir.path(), "s2").unwrap();
        other.save(&CheckpointFile::empty("s2")).unwrap();
        std::fs::copy(other.path(), store.path()).unwrap();
        assert!(matches!(store.load(), Err(CheckpointError::Corrupt { .. })));
    }
}
