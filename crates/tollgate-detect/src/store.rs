//! Where evicted tenant models go: the [`ModelStore`] trait and two stores.
//!
//! [`MemStore`] keeps snapshots in memory (tests, and a binary that wants no
//! persistence). [`DirStore`] keeps one file per tenant in a local directory
//! and is the **only** code in this crate that does I/O: each save writes a
//! temporary file in the same directory, fsyncs it, renames it over the
//! tenant's file and fsyncs the directory, so a crash leaves either the old
//! snapshot or the new one, never a torn file. Tenant ids are validated by
//! `tollgate-events` to `[A-Za-z0-9_.-]` without a leading dot, so they are
//! safe as file names.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tollgate_events::TenantId;

/// A store failure; the engine counts it and carries on (load: start the
/// tenant cold; save: keep the tenant resident).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("model store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("model store: {0}")]
    Other(String),
}

/// Persistence for tenant snapshots (opaque, already checksummed bytes).
pub trait ModelStore: Send {
    /// The tenant's last saved snapshot, if any.
    fn load(&mut self, tenant: &TenantId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replace the tenant's snapshot.
    fn save(&mut self, tenant: &TenantId, bytes: &[u8]) -> Result<(), StoreError>;
}

/// Snapshots in memory.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    pub snapshots: BTreeMap<TenantId, Vec<u8>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl ModelStore for MemStore {
    fn load(&mut self, tenant: &TenantId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.snapshots.get(tenant).cloned())
    }
    fn save(&mut self, tenant: &TenantId, bytes: &[u8]) -> Result<(), StoreError> {
        self.snapshots.insert(tenant.clone(), bytes.to_vec());
        Ok(())
    }
}

/// One `<tenant>.tgdm` file per tenant in a directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// Use `dir`, creating it if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(DirStore { dir })
    }

    pub fn path_of(&self, tenant: &TenantId) -> PathBuf {
        self.dir.join(format!("{}.tgdm", tenant.as_str()))
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!(
            ".{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("snapshot")
        ));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        // make the rename durable
        fs::File::open(&self.dir)?.sync_all()
    }
}

impl ModelStore for DirStore {
    fn load(&mut self, tenant: &TenantId) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(tenant);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }
    fn save(&mut self, tenant: &TenantId, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(tenant);
        self.write_atomic(&path, bytes)
            .map_err(|source| StoreError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tollgate-detect-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn dir_store_round_trips_and_replaces_atomically() {
        let d = tmpdir("dirstore");
        let mut s = DirStore::open(&d).unwrap();
        let t = TenantId::new("acme").unwrap();
        assert_eq!(s.load(&t).unwrap(), None);
        s.save(&t, b"one").unwrap();
        s.save(&t, b"two").unwrap();
        assert_eq!(s.load(&t).unwrap().as_deref(), Some(&b"two"[..]));
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp files left behind: {names:?}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unreadable_snapshot_is_an_error_not_a_panic() {
        let d = tmpdir("dirstore-err");
        let mut s = DirStore::open(&d).unwrap();
        let t = TenantId::new("acme").unwrap();
        fs::create_dir_all(s.path_of(&t)).unwrap(); // a directory where the file should be
        assert!(matches!(s.load(&t), Err(StoreError::Io { .. })));
        assert!(s.save(&t, b"x").is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
