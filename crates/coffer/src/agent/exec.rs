//! Process supervisor mode (`exec`): starts the child with the rendered
//! environment, restarts it when the environment changes (with
//! `restart_on_secret_changes = "always"`), passes SIGTERM, SIGINT and
//! SIGHUP on, and exits with the child's exit code.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use super::config::{ExecConfig, Restart};
use super::runner::EnvMap;

/// Sends `sig` to the child `pid`.
#[allow(unsafe_code)]
fn send_signal(pid: u32, sig: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // `pid` is our own child's, still unreaped (we hold its handle).
    unsafe {
        libc::kill(pid, sig);
    }
}

fn spawn(config: &ExecConfig, env: &EnvMap) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(&config.command[0]);
    cmd.args(&config.command[1..]);
    for (k, v) in env.iter() {
        cmd.env(k, v.as_str());
    }
    cmd.kill_on_drop(true).spawn()
}

/// Stops the child: its stop signal, then SIGKILL after the kill timeout.
async fn stop(child: &mut tokio::process::Child, config: &ExecConfig) -> Option<i32> {
    if let Some(pid) = child.id() {
        send_signal(pid, config.restart_stop_signal);
    }
    match tokio::time::timeout(config.restart_kill_timeout, child.wait()).await {
        Ok(Ok(status)) => status.code(),
        _ => {
            let _ = child.kill().await;
            child.wait().await.ok().and_then(|s| s.code())
        }
    }
}

/// Runs the child until it exits or the agent is told to stop; the exit code.
pub async fn run(
    config: ExecConfig,
    mut env: watch::Receiver<Option<EnvMap>>,
) -> anyhow::Result<i32> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    // Wait for the first complete environment.
    let mut current = loop {
        if let Some(e) = env.borrow_and_update().clone() {
            break e;
        }
        tokio::select! {
            r = env.changed() => if r.is_err() { return Ok(1) },
            _ = term.recv() => return Ok(0),
            _ = int.recv() => return Ok(0),
        }
    };
    let mut child = spawn(&config, &current)?;
    tracing::info!("exec: started {} (pid {:?})", config.command[0], child.id());
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status?;
                tracing::info!("exec: the child exited ({status})");
                return Ok(status.code().unwrap_or(1));
            }
            r = env.changed() => {
                if r.is_err() {
                    continue;
                }
                let Some(next) = env.borrow_and_update().clone() else { continue };
                if *next == *current || config.restart_on_secret_changes == Restart::Never {
                    continue;
                }
                current = next;
                tracing::info!("exec: secrets changed; restarting the child");
                stop(&mut child, &config).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                child = spawn(&config, &current)?;
                tracing::info!("exec: restarted (pid {:?})", child.id());
            }
            _ = term.recv() => return Ok(stop(&mut child, &config).await.unwrap_or(0)),
            _ = int.recv() => {
                if let Some(pid) = child.id() { send_signal(pid, libc::SIGINT); }
                return Ok(stop(&mut child, &config).await.unwrap_or(0));
            }
            _ = hup.recv() => {
                if let Some(pid) = child.id() { send_signal(pid, libc::SIGHUP); }
            }
        }
    }
}
