//! Running the child: its environment, its output through the masker,
//! signals forwarded to its process group, restarts on change, its exit
//! code passed through.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::mask::{Masker, Patterns, Shared};
use super::OnChange;

/// How long a child stopped for a restart gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long the output of a child that exited may still be drained (a
/// grandchild may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);

/// New values of the referenced variables, sent by the watcher.
pub type Values = Vec<(String, Zeroizing<String>)>;

/// Everything the supervisor needs.
pub struct Plan {
    /// The command and its arguments.
    pub command: Vec<OsString>,
    /// Variables set to literal values.
    pub literal: Vec<(OsString, OsString)>,
    /// Variables set from references, with their current values.
    pub values: Values,
    /// The masker's shared values; `None` with `--no-masking`.
    pub masks: Option<Shared>,
    /// What a change does.
    pub on_change: OnChange,
    /// Changed values from the watcher (`--watch`).
    pub changes: Option<mpsc::Receiver<(Values, u64)>>,
    /// Told the generation of the values the child holds, after each
    /// start and signal (`--watch`: the consumer report).
    pub applied: Option<std::sync::mpsc::Sender<super::confirm::Msg>>,
}

/// The signals forwarded to the child.
const FORWARDED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Sends `sig` to the child's process group.
fn signal_group(pid: i32, sig: i32) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) takes no pointers; a negative pid names the process
    // group the child leads (it was started with process_group(0)).
    let _ = unsafe { libc::kill(-pid, sig) };
}

/// Waits for the next change, or forever without a watcher.
async fn next_change(changes: &mut Option<mpsc::Receiver<(Values, u64)>>) -> Option<(Values, u64)> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Copies a child's stream to ours through a masker (or unchanged).
async fn pump<R, W>(mut from: R, mut to: W, masks: Shared)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut masker = Masker::new(masks);
    let mut buf = Zeroizing::new(vec![0u8; 8192]);
    loop {
        let n = match from.read(&mut buf[..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let out = masker.feed(&buf[..n]);
        if to.write_all(&out).await.is_err() || to.flush().await.is_err() {
            return;
        }
    }
    let _ = to.write_all(&masker.finish()).await;
    let _ = to.flush().await;
}

/// The exit code a shell would report for `status`.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Runs the child until it exits (restarting it on changes if asked);
/// returns its exit code.
pub async fn supervise(mut plan: Plan) -> anyhow::Result<i32> {
    let (sig_tx, mut sig_rx) = mpsc::unbounded_channel::<i32>();
    for raw in FORWARDED {
        let mut stream = signal(SignalKind::from_raw(raw))?;
        let tx = sig_tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(raw).is_err() {
                    break;
                }
            }
        });
    }
    let program = plan.command[0].clone();
    let mut generation = 0u64;
    let tell = |applied: &Option<std::sync::mpsc::Sender<super::confirm::Msg>>, g: u64| {
        if let Some(tx) = applied {
            let _ = tx.send(super::confirm::Msg::Applied(g));
        }
    };
    loop {
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&plan.command[1..])
            .env_clear()
            .envs(plan.literal.iter().map(|(k, v)| (k, v)))
            .envs(plan.values.iter().map(|(k, v)| (k, v.as_str())))
            .process_group(0)
            .stdin(Stdio::inherit());
        if plan.masks.is_some() {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let shown = program.to_string_lossy();
                eprintln!("coffer run: cannot run {shown}: {e}");
                return Ok(match e.kind() {
                    std::io::ErrorKind::NotFound => 127,
                    _ => 126,
                });
            }
        };
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| anyhow::anyhow!("the child has no process id"))?;
        tell(&plan.applied, generation);
        let mut pumps = Vec::new();
        if let Some(masks) = &plan.masks {
            if let Some(out) = child.stdout.take() {
                pumps.push(tokio::spawn(pump(out, tokio::io::stdout(), masks.clone())));
            }
            if let Some(err) = child.stderr.take() {
                pumps.push(tokio::spawn(pump(err, tokio::io::stderr(), masks.clone())));
            }
        }
        let restart = loop {
            tokio::select! {
                status = child.wait() => {
                    let code = exit_code(status?);
                    for p in pumps {
                        let _ = tokio::time::timeout(DRAIN, p).await;
                    }
                    return Ok(code);
                }
                Some(sig) = sig_rx.recv() => signal_group(pid, sig),
                change = next_change(&mut plan.changes) => {
                    let Some((values, g)) = change else {
                        plan.changes = None;
                        continue;
                    };
                    if let Some(masks) = &plan.masks {
                        // Old values stay masked: the child may still print them.
                        let mut all: Vec<&str> = plan.values.iter().map(|(_, v)| v.as_str()).collect();
                        all.extend(values.iter().map(|(_, v)| v.as_str()));
                        *masks.write() = Arc::new(Patterns::new(all));
                    }
                    plan.values = values;
                    match plan.on_change {
                        OnChange::Nothing => {}
                        OnChange::Signal(sig) => {
                            eprintln!("coffer run: a secret changed; sending signal {sig} to the command");
                            signal_group(pid, sig);
                            tell(&plan.applied, g);
                        }
                        OnChange::Restart => {
                            generation = g;
                            break true;
                        }
                    }
                }
            }
        };
        if restart {
            eprintln!("coffer run: a secret changed; restarting the command");
            signal_group(pid, libc::SIGTERM);
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                signal_group(pid, libc::SIGKILL);
                let _ = child.wait().await;
            }
            // The old child's output pumps end with their pipes.
        }
    }
}
