//! The rows this node last read, kept in runtime_dir: a node restarted while PostgreSQL is
//! down starts with the accounts it had, rather than with none while the front sends it their
//! requests. The whole read after the connection comes back reconciles: rows whose version
//! did not change are left running. Written at most once per check, atomically (a hidden
//! temporary file renamed over the old one), mode 0600: specs may hold secrets in `env`.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::table::Row;

/// Where one table's rows are kept.
#[derive(Clone, Debug)]
pub struct RowCache {
    path: PathBuf,
}

/// A cache file that does not read; the node starts without it.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the rows kept in {}: {why}; starting without them", path.display())]
pub struct CacheError {
    path: PathBuf,
    why: String,
}

impl RowCache {
    pub fn in_dir(runtime_dir: &Path, table: &str) -> Self {
        Self {
            path: runtime_dir.join(format!("{table}.rows.json")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rows kept, or `None` when there is no file (blocking).
    pub fn load(&self) -> Result<Option<Vec<Row>>, CacheError> {
        let failed = |why: String| CacheError {
            path: self.path.clone(),
            why,
        };
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(failed(err.to_string())),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|err| failed(err.to_string()))
    }

    /// Replaces the kept rows with `rows` (blocking).
    pub fn store(&self, rows: &[Row]) -> io::Result<()> {
        let temporary = self
            .path
            .with_extension(format!("{}.tmp", std::process::id()));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(&serde_json::to_vec(rows).expect("rows serialize"))?;
            file.sync_all()
        })();
        match written.and_then(|()| std::fs::rename(&temporary, &self.path)) {
            Ok(()) => Ok(()),
            Err(err) => {
                let _ = std::fs::remove_file(&temporary);
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn rows_kept_read_back_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RowCache::in_dir(dir.path(), "plexer_accounts");
        assert!(cache.load().unwrap().is_none());
        let rows = vec![Row {
            name: "alice".into(),
            spec: "env: { TOKEN: secret }\n".into(),
            version: 7,
        }];
        cache.store(&rows).unwrap();
        assert_eq!(cache.load().unwrap(), Some(rows));
        let mode = std::fs::metadata(cache.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(cache.path(), "not json").unwrap();
        let bad = cache.load().unwrap_err().to_string();
        assert!(bad.contains("starting without them"), "{bad}");
    }
}
