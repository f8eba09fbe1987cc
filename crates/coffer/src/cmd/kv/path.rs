//! Where a KV v2 secret lives: its mount and its path inside the mount.

/// A secret's mount and relative path, e.g. `secret` + `app/db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPath {
    /// The mount, without slashes (`secret`).
    pub mount: String,
    /// The path below the mount, without leading or trailing slashes (may be empty).
    pub path: String,
}

impl KvPath {
    /// Resolves `-mount=M PATH` (PATH relative to M) or `M/PATH` (the first
    /// segment is the mount).
    pub fn resolve(mount: Option<&str>, path: &str) -> Result<KvPath, String> {
        let path = path.trim().trim_matches('/');
        let (mount, path) = match mount.map(|m| m.trim().trim_matches('/')) {
            Some("") => return Err("the -mount flag must not be empty".into()),
            Some(m) => (m, path),
            None => path.split_once('/').unwrap_or((path, "")),
        };
        if mount.is_empty() {
            return Err("missing mount: give PATH as <mount>/<path> or use -mount".into());
        }
        Ok(KvPath {
            mount: mount.to_owned(),
            path: path.trim_matches('/').to_owned(),
        })
    }

    /// Fails unless the path below the mount is non-empty.
    pub fn require_path(self) -> Result<KvPath, String> {
        if self.path.is_empty() {
            return Err(format!(
                "missing secret path below the mount {:?}",
                self.mount
            ));
        }
        Ok(self)
    }

    /// The API path under an endpoint, e.g. `api("data")` = `secret/data/app/db`.
    pub fn api(&self, endpoint: &str) -> String {
        if self.path.is_empty() {
            format!("{}/{endpoint}", self.mount)
        } else {
            format!("{}/{endpoint}/{}", self.mount, self.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_segment_is_the_mount() {
        let p = KvPath::resolve(None, "/secret/app/db/").unwrap();
        assert_eq!(p.mount, "secret");
        assert_eq!(p.path, "app/db");
        assert_eq!(p.api("data"), "secret/data/app/db");
    }

    #[test]
    fn mount_flag_makes_the_path_relative() {
        let p = KvPath::resolve(Some("kv/"), "secret/app").unwrap();
        assert_eq!(p.api("metadata"), "kv/metadata/secret/app");
    }

    #[test]
    fn empty_paths() {
        let p = KvPath::resolve(None, "secret").unwrap();
        assert_eq!(p.api("metadata"), "secret/metadata");
        assert!(p.require_path().is_err());
        assert!(KvPath::resolve(None, "/").is_err());
        assert!(KvPath::resolve(Some(""), "a").is_err());
    }
}
