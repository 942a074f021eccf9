//! One forwarded connection: a timed connect to the configured target (never
//! to an address the jail names), then a bounded copy both ways with EOF and
//! half-close carried across.

use crate::limits::{
    ACCEPT_ERROR_PAUSE, CHANNEL_OPEN_TIMEOUT, COPY_BUF_BYTES, TARGET_CONNECT_TIMEOUT,
};
use russh::client::{ChannelOpenHandle, ChannelOpener, Msg};
use russh::{Channel, ChannelMsg, ChannelOpenFailure};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

/// Where forwarded connections go.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// A channel the jail opened, waiting for its target connection.
pub struct Incoming {
    pub channel: Channel<Msg>,
    pub reply: ChannelOpenHandle,
    /// Who connected to the jail's listener (for logs).
    pub origin: String,
    /// Holds one of the [`crate::limits::MAX_CHANNELS`] slots until the copy ends.
    pub permit: OwnedSemaphorePermit,
}

/// Connects to `target`, accepts the channel, and copies until both sides are done.
/// A target that cannot be reached gets the channel refused; the tunnel stays up.
pub async fn serve(incoming: Incoming, target: &Target) {
    let Incoming {
        channel,
        reply,
        origin,
        permit: _permit,
    } = incoming;
    let connect = tokio::time::timeout(
        TARGET_CONNECT_TIMEOUT,
        TcpStream::connect((target.host.as_str(), target.port)),
    );
    let stream = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            log::warn!(
                "refused forwarded connection from {origin}: target {}:{}: {e}",
                target.host,
                target.port
            );
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
        Err(_) => {
            log::warn!(
                "refused forwarded connection from {origin}: target {}:{} did not answer within {}s",
                target.host,
                target.port,
                TARGET_CONNECT_TIMEOUT.as_secs()
            );
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    reply.accept().await;
    log::debug!("forwarding {origin} -> {}:{}", target.host, target.port);
    if let Err(e) = copy(channel, stream).await {
        log::debug!("forwarded connection from {origin} ended: {e}");
    }
}

/// Next connection on the `-L` listener; pending forever without one.
pub async fn accept(local: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match local {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Closes a local connection with a reset, so the client learns at once.
pub fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// While the link to the jail is down, answers every `-L` connection with a
/// reset instead of leaving it queued in the backlog. Never returns.
pub async fn refuse_while_down(local: Option<&TcpListener>) -> std::convert::Infallible {
    loop {
        match accept(local).await {
            Ok((stream, peer)) => {
                log::warn!("refused local connection from {peer}: the link to the jail is down");
                reset(stream);
            }
            Err(e) => {
                log::warn!("cannot accept a local connection: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// One `-L` connection: asks the jail for a `direct-tcpip` channel to `target`,
/// then copies both ways. A refusal (the jail's PermitOpen, or the host down)
/// resets the local connection; the tunnel stays up.
pub async fn serve_local(
    opener: ChannelOpener,
    stream: TcpStream,
    peer: SocketAddr,
    target: &Target,
    _permit: OwnedSemaphorePermit,
) {
    let open = opener.direct_tcpip(
        target.host.as_str(),
        u32::from(target.port),
        peer.ip().to_string(),
        u32::from(peer.port()),
    );
    let why = match tokio::time::timeout(CHANNEL_OPEN_TIMEOUT, open).await {
        Ok(Ok(channel)) => {
            let _ = stream.set_nodelay(true);
            log::debug!(
                "forwarding {peer} -> {}:{} via the jail",
                target.host,
                target.port
            );
            if let Err(e) = copy(channel, stream).await {
                log::debug!("local connection from {peer} ended: {e}");
            }
            return;
        }
        Ok(Err(russh::Error::ChannelOpenFailure(reason))) => format!(
            "the jail refused ({reason:?}): is {}:{} in its PermitOpen, and is it up?",
            target.host, target.port
        ),
        Ok(Err(e)) => format!("link to the jail failed: {e}"),
        Err(_) => format!(
            "the jail did not open the channel within {}s",
            CHANNEL_OPEN_TIMEOUT.as_secs()
        ),
    };
    log::warn!(
        "local connection from {peer} to {}:{}: {why}",
        target.host,
        target.port
    );
    reset(stream);
}

/// How the jail-to-target direction ended.
enum DownEnd {
    /// The jail sent EOF: the target's write side is shut, the other direction goes on.
    Eof,
    /// The channel closed: everything stops.
    Closed,
}

async fn copy(channel: Channel<Msg>, mut stream: TcpStream) -> std::io::Result<()> {
    let (mut chan_rx, chan_tx) = channel.split();
    let (mut sock_rx, mut sock_tx) = stream.split();

    // target -> jail, through one fixed buffer.
    let up = async {
        let mut buf = [0u8; COPY_BUF_BYTES];
        loop {
            let n = sock_rx.read(&mut buf).await?;
            if n == 0 {
                let _ = chan_tx.eof().await;
                return Ok::<(), std::io::Error>(());
            }
            chan_tx
                .data_bytes(bytes::Bytes::copy_from_slice(&buf[..n]))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
    };
    // jail -> target; russh's per-channel queue is bounded, so a slow target
    // pushes back through the SSH window instead of growing a buffer here.
    let down = async {
        loop {
            match chan_rx.wait().await {
                Some(ChannelMsg::Data { data }) => sock_tx.write_all(&data).await?,
                Some(ChannelMsg::Eof) => {
                    sock_tx.shutdown().await?;
                    return Ok::<DownEnd, std::io::Error>(DownEnd::Eof);
                }
                Some(ChannelMsg::Close) | None => return Ok(DownEnd::Closed),
                Some(_) => {}
            }
        }
    };
    let result = {
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                r = &mut up, if !up_done => {
                    if let Err(e) = r { break Err(e) }
                    up_done = true;
                    if down_done { break Ok(()) }
                }
                r = &mut down, if !down_done => match r {
                    Ok(DownEnd::Eof) => {
                        down_done = true;
                        if up_done { break Ok(()) }
                    }
                    Ok(DownEnd::Closed) => break Ok(()),
                    Err(e) => break Err(e),
                },
            }
        }
    };
    let _ = chan_tx.close().await;
    result
}
