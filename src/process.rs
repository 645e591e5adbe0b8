//! Child processes (pg_dump, pg_restore...): each runs in its own process group, its stderr is
//! drained on its own thread, and it succeeds only when it exited 0. Stopping one sends SIGTERM to
//! the whole group, waits a grace period, then SIGKILLs; dropping an unfinished one kills it.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::error::Error;

/// How much of a child's stderr is kept for error messages.
const STDERR_TAIL: usize = 64 * 1024;
/// How long a child gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

pub struct Child {
    name: String,
    inner: Option<std::process::Child>,
    stderr: Option<JoinHandle<String>>,
}

/// A finished child: how it ended and what it wrote on stderr.
pub struct Finished {
    pub status: ExitStatus,
    pub stderr: String,
}

impl Child {
    /// Starts `cmd` in a new process group with stdin closed and stderr captured.
    /// The caller decides stdout.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Child> {
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        let mut inner = cmd.spawn().map_err(|e| {
            Error::failed(format!("could not start {name}: {e}"))
                .hint("check that the PostgreSQL client programs are installed (--pg-bin-dir)")
        })?;
        let mut pipe = inner.stderr.take().expect("stderr is piped");
        let stderr = std::thread::Builder::new()
            .name(format!("{name}-stderr"))
            .spawn(move || {
                let mut tail: Vec<u8> = Vec::new();
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > 2 * STDERR_TAIL {
                        tail.drain(..tail.len() - STDERR_TAIL);
                    }
                }
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
                String::from_utf8_lossy(&tail).trim().to_string()
            })
            .context("could not start a thread")?;
        Ok(Child {
            name: name.to_string(),
            inner: Some(inner),
            stderr: Some(stderr),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.inner.as_ref().map(|c| c.id())
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.inner.as_mut().and_then(|c| c.stdout.take())
    }

    /// A handle that can signal the child's process group from elsewhere.
    pub fn killer(&self) -> Killer {
        Killer {
            pgid: self.inner.as_ref().map(|c| c.id() as i32),
        }
    }

    /// Waits for the child to exit (blocking) and collects its stderr.
    pub fn wait_blocking(mut self) -> Result<Finished> {
        let mut inner = self.inner.take().expect("child not yet waited");
        let status = inner
            .wait()
            .with_context(|| format!("could not wait for {}", self.name))?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ok(Finished { status, stderr })
    }

    /// Waits (on a blocking thread) and collects its stderr.
    pub async fn wait(self) -> Result<Finished> {
        tokio::task::spawn_blocking(move || self.wait_blocking()).await?
    }

    /// Waits and turns anything but exit status 0 into an error quoting the child's stderr.
    pub async fn wait_success(self) -> Result<String> {
        let name = self.name.clone();
        let done = self.wait().await?;
        done.check(&name)?;
        Ok(done.stderr)
    }

    /// SIGTERM to the process group, up to `grace` to exit, then SIGKILL. Blocks.
    pub fn terminate(&mut self, grace: Duration) -> Option<Finished> {
        let mut inner = self.inner.take()?;
        let pgid = Pid::from_raw(inner.id() as i32);
        let _ = killpg(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        let status = loop {
            match inner.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = killpg(pgid, Signal::SIGKILL);
                    break inner.wait().ok();
                }
            }
        };
        // Children of the child (none for pg_dump, but a wrapper script may have some).
        let _ = killpg(pgid, Signal::SIGKILL);
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        status.map(|status| Finished { status, stderr })
    }
}

/// Signals a child's process group without owning the child (which another thread may be
/// waiting for).
#[derive(Debug, Clone, Copy)]
pub struct Killer {
    pgid: Option<i32>,
}

impl Killer {
    pub fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(Pid::from_raw(pgid), signal);
        }
    }
}

impl Finished {
    pub fn check(&self, name: &str) -> Result<()> {
        if self.status.success() {
            return Ok(());
        }
        let how = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "failed".to_string(),
        };
        let stderr = if self.stderr.is_empty() {
            "(no error output)".to_string()
        } else {
            self.stderr.clone()
        };
        Err(Error::failed(format!("{name} {how}:\n{stderr}")).into())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.inner.is_some() {
            // Never leave a dump or restore running behind us.
            self.terminate(Duration::from_millis(500));
        }
    }
}
