//! Where a device's lines go: a file under the server's audit directory
//! (reopened on SIGHUP), stdout, a TCP or UDP collector, or the local
//! syslog socket. Writes block: they run on the device's writer thread
//! ([`super::writer`]), never on the async runtime. One line (with its line
//! break) goes out in one write.
//!
//! Files: `file_path` is resolved under the configured directory (the
//! server's `[audit] file_dir`) and may not leave it: no `..`, no absolute
//! path elsewhere, and every component is opened with `O_NOFOLLOW` from a
//! handle on the directory, so a symbolic link inside it cannot point the
//! device elsewhere. The file must be a regular file with no other hard
//! link, and its mode at most 0640.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use super::config::AuditSettings;
use crate::{Error, Result};

/// How long a request waits for a device that names no timeout of its own
/// (file, stdout, syslog) to write its entry.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// After a failed TCP write, how long writes fail at once before the next
/// connection attempt (so a dead collector does not make every entry wait).
pub const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// The widest mode a file device may ask for: owner read-write, group read.
pub const MAX_FILE_MODE: u32 = 0o640;

/// Where a file device may write.
#[derive(Debug, Clone)]
pub enum FileDir {
    /// Nowhere: file devices are refused (no directory configured).
    Refused,
    /// Only under this directory.
    Under(PathBuf),
    /// Anywhere: for tools and tests that build devices directly. The
    /// server never uses this.
    Anywhere,
}

impl FileDir {
    /// What the server's settings allow.
    pub fn from_settings(settings: &AuditSettings) -> FileDir {
        match &settings.file_dir {
            Some(d) => FileDir::Under(d.clone()),
            None => FileDir::Refused,
        }
    }
}

/// A device's output.
pub enum Sink {
    /// An append-only file.
    File {
        /// The directory it lives under (opened first, symlinks followed).
        root: PathBuf,
        /// Its path below `root` (every component opened without following links).
        rel: PathBuf,
        /// Permissions to set (None: leave them).
        mode: Option<u32>,
        /// The open file, if open.
        file: Option<File>,
    },
    /// The server's standard output.
    Stdout,
    /// JSON lines over TCP, or one datagram per entry over UDP.
    Socket {
        /// `host:port`.
        address: String,
        /// UDP instead of TCP.
        udp: bool,
        /// Connect and write timeout.
        timeout: Duration,
        /// The TCP connection, if connected.
        tcp: Option<TcpStream>,
        /// The UDP socket, if bound.
        datagram: Option<UdpSocket>,
        /// Writes fail at once until then (after a failed TCP write).
        down_until: Option<Instant>,
    },
    /// The local syslog daemon's datagram socket.
    Syslog {
        /// `/dev/log` unless `socket_path` says otherwise.
        socket: PathBuf,
        /// `<PRI>`: facility * 8 + severity (info).
        pri: u8,
        /// The tag.
        tag: String,
    },
}

impl Sink {
    /// The sink a device type and its options describe; file devices only
    /// where `dir` allows.
    pub fn from_options(
        kind: &str,
        options: &BTreeMap<String, String>,
        dir: &FileDir,
    ) -> Result<Sink> {
        let opt = |k: &str| options.get(k).map(String::as_str).filter(|s| !s.is_empty());
        match kind {
            "stdout" => Ok(Sink::Stdout),
            "file" => {
                let path = opt("file_path")
                    .or(opt("path"))
                    .ok_or_else(|| Error::bad("file_path is required"))?;
                if path == "stdout" {
                    return Ok(Sink::Stdout);
                }
                let m = opt("mode").unwrap_or("0600");
                let mode = u32::from_str_radix(m, 8)
                    .map_err(|_| Error::bad(format!("invalid mode {m:?}: an octal number")))?;
                if mode & !MAX_FILE_MODE != 0 {
                    return Err(Error::bad(format!(
                        "mode {m}: at most 0640 (owner read-write, group read), never executable"
                    )));
                }
                let (root, rel) = resolve_file(path, dir)?;
                Ok(Sink::File {
                    root,
                    rel,
                    mode: (mode != 0).then_some(mode),
                    file: None,
                })
            }
            "socket" => {
                let address = opt("address").ok_or_else(|| Error::bad("address is required"))?;
                let udp = match opt("socket_type").unwrap_or("tcp") {
                    "tcp" => false,
                    "udp" => true,
                    other => return Err(Error::bad(format!("unsupported socket_type {other:?}"))),
                };
                let timeout = match opt("write_timeout") {
                    None => Duration::from_secs(2),
                    Some(t) => Duration::from_secs(
                        crate::util::parse_duration(t)
                            .filter(|s| *s > 0)
                            .ok_or_else(|| Error::bad("write_timeout: invalid duration"))?,
                    ),
                };
                Ok(Sink::Socket {
                    address: address.to_string(),
                    udp,
                    timeout,
                    tcp: None,
                    datagram: None,
                    down_until: None,
                })
            }
            "syslog" => {
                let facility = opt("facility").unwrap_or("AUTH");
                let code = facility_code(facility)
                    .ok_or_else(|| Error::bad(format!("unknown syslog facility {facility:?}")))?;
                Ok(Sink::Syslog {
                    socket: PathBuf::from(opt("socket_path").unwrap_or("/dev/log")),
                    pri: code * 8 + 6,
                    tag: opt("tag").unwrap_or("coffer").to_string(),
                })
            }
            other => Err(Error::bad(format!("unknown audit device type {other:?}"))),
        }
    }

    /// Writes one line (`line` has no line break).
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self {
            Sink::File { .. } => {
                let mut buf = Vec::with_capacity(line.len() + 1);
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
                if let Err(first) = self.file()?.write_all(&buf) {
                    // One retry on a fresh handle (the file may have been replaced).
                    self.close();
                    return self
                        .file()
                        .and_then(|f| f.write_all(&buf))
                        .map_err(|_| first);
                }
                Ok(())
            }
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
                out.flush()
            }
            Sink::Socket {
                address,
                udp: true,
                timeout,
                datagram,
                ..
            } => {
                if datagram.is_none() {
                    let target = resolve(address)?.into_iter().next().ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing")
                    })?;
                    let local = if target.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let sock = UdpSocket::bind(local)?;
                    sock.connect(target)?;
                    sock.set_write_timeout(Some(*timeout))?;
                    *datagram = Some(sock);
                }
                let sent = match datagram.as_ref() {
                    Some(s) => s.send(line.as_bytes()).map(|_| ()),
                    None => Err(io::Error::other("no socket")),
                };
                if sent.is_err() {
                    *datagram = None;
                }
                sent
            }
            Sink::Socket {
                address,
                timeout,
                tcp,
                down_until,
                ..
            } => {
                if down_until.is_some_and(|t| Instant::now() < t) {
                    return Err(io::Error::other(
                        "collector unreachable; the next attempt follows shortly",
                    ));
                }
                let mut buf = Vec::with_capacity(line.len() + 1);
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
                let existing = tcp.as_mut().map(|s| s.write_all(&buf));
                let result = match existing {
                    Some(Ok(())) => Ok(()),
                    // Not connected, or the connection broke: one fresh attempt.
                    _ => connect(address, *timeout).and_then(|s| tcp.insert(s).write_all(&buf)),
                };
                match &result {
                    Ok(()) => *down_until = None,
                    Err(_) => {
                        *tcp = None;
                        *down_until = Some(Instant::now() + RECONNECT_BACKOFF);
                    }
                }
                result
            }
            Sink::Syslog { socket, pri, tag } => {
                let msg = format!("<{pri}>{tag}[{}]: {line}", std::process::id());
                let sock = std::os::unix::net::UnixDatagram::unbound()?;
                sock.send_to(msg.as_bytes(), &*socket).map(|_| ())
            }
        }
    }

    /// Opens the file if it is not open yet.
    fn file(&mut self) -> io::Result<&mut File> {
        let Sink::File {
            root,
            rel,
            mode,
            file,
        } = self
        else {
            return Err(io::Error::other("not a file device"));
        };
        if file.is_none() {
            let f = open_in(root, rel, Some(mode.unwrap_or(0o600)))?;
            if let Some(m) = mode {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(*m))?;
            }
            *file = Some(f);
        }
        file.as_mut()
            .ok_or_else(|| io::Error::other("file not open"))
    }

    /// Closes the file or connection; the next write opens it again.
    pub fn close(&mut self) {
        match self {
            Sink::File { file, .. } => *file = None,
            Sink::Socket {
                tcp,
                datagram,
                down_until,
                ..
            } => {
                *tcp = None;
                *datagram = None;
                *down_until = None;
            }
            _ => {}
        }
    }

    /// The last line of the file (for resuming the chain after a restart).
    pub fn last_line(&self) -> Option<String> {
        let Sink::File { root, rel, .. } = self else {
            return None;
        };
        let f = open_in(root, rel, None).ok()?;
        last_line_of(f).ok().flatten()
    }

    /// The file a file sink writes (its directory joined with its path).
    pub fn file_path(&self) -> Option<PathBuf> {
        match self {
            Sink::File { root, rel, .. } => Some(root.join(rel)),
            _ => None,
        }
    }

    /// Whether this is a file (reopened on SIGHUP).
    pub fn is_file(&self) -> bool {
        matches!(self, Sink::File { .. })
    }

    /// Whether a write that succeeds proves nothing (UDP: a datagram goes
    /// out whether or not anyone receives it). Such a device never alone
    /// lets a request through.
    pub fn best_effort(&self) -> bool {
        matches!(self, Sink::Socket { udp: true, .. })
    }

    /// How long a request waits for this sink to write an entry.
    pub fn deadline(&self) -> Duration {
        match self {
            Sink::Socket { timeout, .. } => *timeout,
            _ => DEFAULT_DEADLINE,
        }
    }
}

/// `file_path` as (directory, path below it), or why it is refused.
fn resolve_file(path: &str, dir: &FileDir) -> Result<(PathBuf, PathBuf)> {
    let p = Path::new(path);
    let (root, rel) = match dir {
        FileDir::Refused => {
            return Err(Error::bad(
                "file audit devices are disabled on this server: set file_dir in the [audit] \
                 section of its configuration (--dev-audit-dir for a dev server)",
            ))
        }
        FileDir::Anywhere => {
            let name = p
                .file_name()
                .ok_or_else(|| Error::bad("file_path names no file"))?;
            let parent = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (parent.to_path_buf(), PathBuf::from(name))
        }
        FileDir::Under(root) => {
            let rel = if p.is_absolute() {
                let canonical = std::fs::canonicalize(root).ok();
                p.strip_prefix(root)
                    .ok()
                    .or_else(|| canonical.as_deref().and_then(|c| p.strip_prefix(c).ok()))
                    .ok_or_else(|| {
                        Error::bad(format!(
                            "file_path must be inside the audit directory {} (file_dir)",
                            root.display()
                        ))
                    })?
                    .to_path_buf()
            } else {
                p.to_path_buf()
            };
            (root.clone(), rel)
        }
    };
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::bad(
            "file_path must name a file inside the audit directory, without '..'",
        ));
    }
    Ok((root, rel))
}

/// Opens `rel` below `root` without following any symbolic link below
/// `root`: for appending (created with `create` mode) or, with `None`, for
/// reading. Only a regular file with one link is accepted.
fn open_in(root: &Path, rel: &Path, create: Option<u32>) -> io::Result<File> {
    use rustix::fs::{open, openat, Mode, OFlags};
    let names: Vec<&OsStr> = rel.components().map(|c| c.as_os_str()).collect();
    let Some((last, parents)) = names.split_last() else {
        return Err(io::Error::other("no file name"));
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = open(root, dir_flags, Mode::empty())?;
    let refused = |e: rustix::io::Errno| -> io::Error {
        if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
            io::Error::other(format!(
                "{}: a symbolic link (or a non-directory) in the path is refused",
                rel.display()
            ))
        } else {
            e.into()
        }
    };
    for name in parents {
        dir = openat(&dir, *name, dir_flags | OFlags::NOFOLLOW, Mode::empty()).map_err(refused)?;
    }
    let flags = match create {
        Some(_) => OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE,
        None => OFlags::RDONLY,
    } | OFlags::NOFOLLOW
        | OFlags::CLOEXEC
        | OFlags::NONBLOCK;
    let fd =
        openat(&dir, *last, flags, Mode::from_raw_mode(create.unwrap_or(0))).map_err(refused)?;
    let f = File::from(fd);
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(format!(
            "{}: not a regular file",
            rel.display()
        )));
    }
    use std::os::unix::fs::MetadataExt;
    if meta.nlink() > 1 {
        return Err(io::Error::other(format!(
            "{}: the file has other hard links",
            rel.display()
        )));
    }
    Ok(f)
}

fn resolve(address: &str) -> io::Result<Vec<SocketAddr>> {
    Ok(address.to_socket_addrs()?.collect())
}

/// Connects to the first address of `address` that answers within `timeout`.
fn connect(address: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing");
    for a in resolve(address)? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_write_timeout(Some(timeout))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The last non-empty line of a file, read backwards in blocks.
fn last_line_of(mut f: File) -> io::Result<Option<String>> {
    let len = f.seek(SeekFrom::End(0))?;
    let mut end = len;
    let mut tail: Vec<u8> = Vec::new();
    const BLOCK: u64 = 64 * 1024;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let mut block = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        end = start;
        let trimmed = trim_end_newlines(&tail);
        if let Some(i) = trimmed.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(
                String::from_utf8_lossy(&trimmed[i + 1..]).into_owned(),
            ));
        }
    }
    let trimmed = trim_end_newlines(&tail);
    Ok((!trimmed.is_empty()).then(|| String::from_utf8_lossy(trimmed).into_owned()))
}

fn trim_end_newlines(b: &[u8]) -> &[u8] {
    let mut n = b.len();
    while n > 0 && (b[n - 1] == b'\n' || b[n - 1] == b'\r') {
        n -= 1;
    }
    &b[..n]
}

/// Syslog facility names as Vault accepts them.
fn facility_code(name: &str) -> Option<u8> {
    let names = [
        "KERN", "USER", "MAIL", "DAEMON", "AUTH", "SYSLOG", "LPR", "NEWS", "UUCP", "CRON",
        "AUTHPRIV", "FTP",
    ];
    let upper = name.to_ascii_uppercase();
    if let Some(i) = names.iter().position(|n| *n == upper) {
        return u8::try_from(i).ok();
    }
    let n: u8 = upper.strip_prefix("LOCAL")?.parse().ok()?;
    (n <= 7).then_some(16 + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lines_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let opts = BTreeMap::from([("file_path".to_string(), path.display().to_string())]);
        let mut s = Sink::from_options("file", &opts, &FileDir::Anywhere).unwrap();
        assert_eq!(s.last_line(), None);
        s.write_line("{\"a\":1}").unwrap();
        s.write_line("{\"a\":2}").unwrap();
        assert_eq!(s.last_line().as_deref(), Some("{\"a\":2}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn syslog_formats_and_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("log.sock");
        let server = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
        let opts = BTreeMap::from([
            ("socket_path".to_string(), sock_path.display().to_string()),
            ("facility".to_string(), "local0".to_string()),
        ]);
        let mut s = Sink::from_options("syslog", &opts, &FileDir::Refused).unwrap();
        s.write_line("{\"x\":1}").unwrap();
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(got.starts_with("<134>coffer["), "{got}");
        assert!(got.ends_with("]: {\"x\":1}"), "{got}");
        let missing = BTreeMap::from([(
            "socket_path".to_string(),
            dir.path().join("none").display().to_string(),
        )]);
        let mut s = Sink::from_options("syslog", &missing, &FileDir::Refused).unwrap();
        assert!(s.write_line("{}").is_err());
        assert!(Sink::from_options(
            "syslog",
            &BTreeMap::from([("facility".into(), "nope".into())]),
            &FileDir::Refused,
        )
        .is_err());
    }

    #[test]
    fn long_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.log");
        let long = format!("{{\"v\":\"{}\"}}", "x".repeat(200_000));
        std::fs::write(&path, format!("{{}}\n{long}\n")).unwrap();
        let f = File::open(&path).unwrap();
        assert_eq!(last_line_of(f).unwrap().as_deref(), Some(long.as_str()));
    }

    fn file_sink(path: &str, mode: Option<&str>, dir: &FileDir) -> Result<Sink> {
        let mut opts = BTreeMap::from([("file_path".to_string(), path.to_string())]);
        if let Some(m) = mode {
            opts.insert("mode".into(), m.into());
        }
        Sink::from_options("file", &opts, dir)
    }

    #[test]
    fn file_paths_stay_under_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let under = FileDir::Under(d.to_path_buf());
        let msg = |r: Result<Sink>| match r {
            Err(Error::BadRequest(m)) => m,
            Err(e) => panic!("not a 400: {e}"),
            Ok(_) => panic!("accepted"),
        };
        assert!(msg(file_sink("a.log", None, &FileDir::Refused)).contains("file_dir"));
        assert!(file_sink("stdout", None, &FileDir::Refused).is_ok());
        for p in [
            "../a.log".to_string(),
            "x/../../a.log".to_string(),
            "/etc/cron.d/x".to_string(),
            format!("{}/../a.log", d.display()),
            format!("{}", d.display()),
            String::new(),
        ] {
            assert!(file_sink(&p, None, &under).is_err(), "{p:?}");
        }
        for m in ["0755", "0777", "0700", "0660", "0644", "1600", "8", "rw"] {
            assert!(file_sink("a.log", Some(m), &under).is_err(), "{m}");
        }
        for m in ["0640", "0600", "0400", "0"] {
            assert!(file_sink("a.log", Some(m), &under).is_ok(), "{m}");
        }
        let abs = d.join("abs.log");
        let mut s = file_sink(abs.to_str().unwrap(), Some("0640"), &under).unwrap();
        s.write_line("{}").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&abs).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn links_inside_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let d = dir.path();
        let under = FileDir::Under(d.to_path_buf());
        let target = out.path().join("t.log");
        std::fs::write(&target, "x\n").unwrap();
        std::os::unix::fs::symlink(&target, d.join("link.log")).unwrap();
        std::os::unix::fs::symlink(out.path(), d.join("sub")).unwrap();
        std::fs::hard_link(&target, d.join("hard.log")).unwrap();
        for p in ["link.log", "sub/t.log", "sub/new.log", "hard.log"] {
            let mut s = file_sink(p, None, &under).unwrap();
            let e = s.write_line("{}").unwrap_err();
            assert!(!e.to_string().is_empty(), "{p}");
            assert_eq!(s.last_line(), None, "{p}");
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "x\n");
        assert!(!out.path().join("new.log").exists());
        // A real subdirectory is fine.
        std::fs::create_dir(d.join("real")).unwrap();
        let mut s = file_sink("real/a.log", None, &under).unwrap();
        s.write_line("{\"a\":1}").unwrap();
        assert_eq!(s.last_line().as_deref(), Some("{\"a\":1}"));
        // Nor a directory or a FIFO standing where the file would be.
        let mut s = file_sink("real", None, &under).unwrap();
        assert!(s.write_line("{}").is_err());
    }

    #[test]
    fn tcp_backs_off_after_a_failure_and_udp_is_best_effort() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let opts = BTreeMap::from([("address".to_string(), addr)]);
        let mut s = Sink::from_options("socket", &opts, &FileDir::Refused).unwrap();
        assert!(!s.best_effort());
        assert_eq!(s.deadline(), Duration::from_secs(2));
        assert!(s.write_line("{}").is_err());
        let e = s.write_line("{}").unwrap_err();
        assert!(e.to_string().contains("shortly"), "{e}");
        let udp = BTreeMap::from([
            ("address".to_string(), "127.0.0.1:9".to_string()),
            ("socket_type".to_string(), "udp".to_string()),
        ]);
        let s = Sink::from_options("socket", &udp, &FileDir::Refused).unwrap();
        assert!(s.best_effort());
    }
}
