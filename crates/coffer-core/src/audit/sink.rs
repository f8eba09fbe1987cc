//! Where a device's lines go: a file (reopened on SIGHUP), stdout, a TCP or
//! UDP collector, or the local syslog socket. All writes are synchronous
//! and one line (with its line break) goes out in one write.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

/// A device's output.
pub enum Sink {
    /// An append-only file.
    File {
        /// Its path.
        path: PathBuf,
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
    /// The sink a device type and its options describe.
    pub fn from_options(kind: &str, options: &BTreeMap<String, String>) -> Result<Sink> {
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
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| Error::bad(format!("invalid mode {m:?}: an octal number")))?;
                Ok(Sink::File {
                    path: PathBuf::from(path),
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
                ..
            } => {
                let target = resolve(address)?;
                let local = if target.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let sock = UdpSocket::bind(local)?;
                sock.set_write_timeout(Some(*timeout))?;
                sock.send_to(line.as_bytes(), target).map(|_| ())
            }
            Sink::Socket { .. } => {
                let mut buf = Vec::with_capacity(line.len() + 1);
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
                if self.tcp()?.write_all(&buf).is_ok() {
                    return Ok(());
                }
                self.close();
                self.tcp()?.write_all(&buf)
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
        let Sink::File { path, mode, file } = self else {
            return Err(io::Error::other("not a file device"));
        };
        if file.is_none() {
            let mut o = OpenOptions::new();
            o.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(mode.unwrap_or(0o600));
            }
            let f = o.open(&*path)?;
            #[cfg(unix)]
            if let Some(m) = mode {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(*m))?;
            }
            *file = Some(f);
        }
        file.as_mut()
            .ok_or_else(|| io::Error::other("file not open"))
    }

    /// Connects to the TCP collector if not connected.
    fn tcp(&mut self) -> io::Result<&mut TcpStream> {
        let Sink::Socket {
            address,
            timeout,
            tcp,
            ..
        } = self
        else {
            return Err(io::Error::other("not a socket device"));
        };
        if tcp.is_none() {
            let s = TcpStream::connect_timeout(&resolve(address)?, *timeout)?;
            s.set_write_timeout(Some(*timeout))?;
            *tcp = Some(s);
        }
        tcp.as_mut()
            .ok_or_else(|| io::Error::other("not connected"))
    }

    /// Closes the file or connection; the next write opens it again.
    pub fn close(&mut self) {
        match self {
            Sink::File { file, .. } => *file = None,
            Sink::Socket { tcp, .. } => *tcp = None,
            _ => {}
        }
    }

    /// The last line of the file (for resuming the chain after a restart).
    pub fn last_line(&self) -> Option<String> {
        let Sink::File { path, .. } = self else {
            return None;
        };
        last_line_of(path).ok().flatten()
    }

    /// Whether this is a file (reopened on SIGHUP).
    pub fn is_file(&self) -> bool {
        matches!(self, Sink::File { .. })
    }
}

fn resolve(address: &str) -> io::Result<std::net::SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("address resolves to nothing"))
}

/// The last non-empty line of a file, read backwards in blocks.
fn last_line_of(path: &std::path::Path) -> io::Result<Option<String>> {
    let mut f = File::open(path)?;
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
        let mut s = Sink::from_options("file", &opts).unwrap();
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
        let mut s = Sink::from_options("syslog", &opts).unwrap();
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
        let mut s = Sink::from_options("syslog", &missing).unwrap();
        assert!(s.write_line("{}").is_err());
        assert!(Sink::from_options(
            "syslog",
            &BTreeMap::from([("facility".into(), "nope".into())])
        )
        .is_err());
    }

    #[test]
    fn long_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.log");
        let long = format!("{{\"v\":\"{}\"}}", "x".repeat(200_000));
        std::fs::write(&path, format!("{{}}\n{long}\n")).unwrap();
        assert_eq!(last_line_of(&path).unwrap().as_deref(), Some(long.as_str()));
    }
}
