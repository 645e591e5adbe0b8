//! Driving an [`Upload`]: parts arrive from the pipeline through a bounded channel and are sent
//! with at most `in_flight` requests outstanding.

use anyhow::Result;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc::Receiver;

use super::Upload;

/// Sends every part received, in order of arrival, until the channel closes. Returns the number
/// of parts and bytes sent. The first failed part ends the upload with its error.
pub async fn send_parts(
    upload: &dyn Upload,
    mut parts: Receiver<Bytes>,
    in_flight: usize,
) -> Result<(u32, u64)> {
    let in_flight = in_flight.max(1);
    let mut pending = FuturesUnordered::new();
    let mut number = 0u32;
    let mut offset = 0u64;
    let mut open = true;
    while open || !pending.is_empty() {
        tokio::select! {
            done = pending.next(), if !pending.is_empty() => {
                let result: Option<Result<()>> = done;
                if let Some(r) = result {
                    r?;
                }
            }
            part = parts.recv(), if open && pending.len() < in_flight => match part {
                Some(data) => {
                    number += 1;
                    let at = offset;
                    offset += data.len() as u64;
                    pending.push(upload.put_part(number, at, data));
                }
                None => open = false,
            },
        }
    }
    Ok((number, offset))
}
