//! Cutting the stored stream into multipart-upload parts, hashing it on the way.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::hash::{Checksum, Digest};

/// S3's limits: parts per upload, and the largest part.
pub const MAX_PARTS: u32 = 10_000;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// S3's largest object.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Parts between two doublings of the part size.
const PARTS_PER_STEP: u32 = 1000;

/// Size of part `n` (1-based) of a stream of unknown length: `first`, doubled every 1000 parts,
/// capped at S3's 5 GiB. From 8 MiB this reaches 5 TiB (S3's object limit) before part 10,000
/// while the first 8 GB are cut into 8 MiB parts, which keeps memory low for ordinary databases.
pub fn part_size(first: u64, n: u32) -> u64 {
    let step = (n.saturating_sub(1) / PARTS_PER_STEP).min(20);
    (first << step).min(MAX_PART_SIZE)
}

/// The most bytes a stream can hold within [`MAX_PARTS`] parts starting at `first`.
pub fn capacity(first: u64) -> u64 {
    (1..=MAX_PARTS).map(|n| part_size(first, n)).sum()
}

/// A writer that hashes everything written, and hands complete parts to `emit`.
pub struct PartWriter<F: FnMut(Bytes) -> io::Result<()>> {
    first: u64,
    next: u32,
    buf: BytesMut,
    digest: Digest,
    stored: Arc<AtomicU64>,
    emit: F,
}

impl<F: FnMut(Bytes) -> io::Result<()>> PartWriter<F> {
    pub fn new(first: u64, stored: Arc<AtomicU64>, emit: F) -> Self {
        PartWriter {
            first,
            next: 1,
            buf: BytesMut::with_capacity(first as usize),
            digest: Digest::new(),
            stored,
            emit,
        }
    }

    fn target(&self) -> usize {
        part_size(self.first, self.next) as usize
    }

    fn emit_buffer(&mut self) -> io::Result<()> {
        if self.next > MAX_PARTS {
            return Err(io::Error::other(format!(
                "the stream is larger than {} parts can hold ({} bytes)",
                MAX_PARTS,
                capacity(self.first)
            )));
        }
        self.next += 1;
        let capacity = self.target();
        let part = std::mem::replace(&mut self.buf, BytesMut::with_capacity(capacity));
        (self.emit)(part.freeze())
    }

    /// Emits the last part (possibly short; a stream of nothing is one empty part) and returns the
    /// checksum of everything written and the number of parts.
    pub fn finish(mut self) -> io::Result<(Checksum, u32)> {
        if !self.buf.is_empty() || self.next == 1 {
            self.emit_buffer()?;
        }
        Ok((self.digest.finish(), self.next - 1))
    }
}

impl<F: FnMut(Bytes) -> io::Result<()>> Write for PartWriter<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.target() - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.digest.update(&data[..n]);
        self.stored.fetch_add(n as u64, Ordering::Relaxed);
        if self.buf.len() == self.target() {
            self.emit_buffer()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn default_plan_reaches_five_tib_within_limits() {
        assert!(capacity(8 * MIB) >= 5 * 1024 * 1024 * MIB);
        assert_eq!(part_size(8 * MIB, 1), 8 * MIB);
        assert_eq!(part_size(8 * MIB, 1000), 8 * MIB);
        assert_eq!(part_size(8 * MIB, 1001), 16 * MIB);
        assert!((1..=MAX_PARTS).all(|n| part_size(8 * MIB, n) <= MAX_PART_SIZE));
        assert!((1..=MAX_PARTS).all(|n| part_size(6 * MIB, n) >= MIN_PART_SIZE));
        // The smallest first part that still reaches the object limit.
        assert!(capacity(6 * MIB) >= MAX_OBJECT_SIZE);
        assert!(capacity(5 * MIB) < MAX_OBJECT_SIZE);
    }

    #[test]
    fn parts_follow_the_plan() {
        let mut parts = Vec::new();
        let mut w = PartWriter::new(10, Arc::default(), |p: Bytes| {
            parts.push(p);
            Ok(())
        });
        w.write_all(&[7u8; 25]).unwrap();
        let (sum, n) = w.finish().unwrap();
        assert_eq!(n, 3);
        assert_eq!(sum.bytes, 25);
        assert_eq!(
            parts.iter().map(Bytes::len).collect::<Vec<_>>(),
            [10, 10, 5]
        );
    }

    #[test]
    fn empty_stream_is_one_empty_part() {
        let mut count = 0;
        let w = PartWriter::new(10, Arc::default(), |p: Bytes| {
            assert!(p.is_empty());
            count += 1;
            Ok(())
        });
        assert_eq!(w.finish().unwrap().1, 1);
        assert_eq!(count, 1);
    }
}
