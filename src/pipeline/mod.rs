//! The backup stream: raw archive -> SHA-256 + count -> compression -> SHA-256 + count -> parts.
//!
//! Runs on one blocking thread (zstd adds its own workers); parts leave through `emit`, which
//! applies back-pressure, so memory stays bounded by the part size times the parts in flight.

pub mod compress;
pub mod hash;
pub mod parts;

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

pub use compress::{Algorithm, Compression};
pub use hash::{Checksum, Digest};

/// How much is read from the source at a time.
const READ_CHUNK: usize = 256 * 1024;

/// Bytes seen so far, for progress reporting from another thread.
#[derive(Debug, Default)]
pub struct Counters {
    pub raw: AtomicU64,
    pub stored: Arc<AtomicU64>,
}

impl Counters {
    pub fn raw(&self) -> u64 {
        self.raw.load(Ordering::Relaxed)
    }
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// The archive as pg_dump wrote it.
    pub raw: Checksum,
    /// The object as stored (compressed).
    pub stored: Checksum,
    pub parts: u32,
}

/// Reads `input` to EOF and streams it, compressed, into parts of the given plan.
/// Stops with an `Interrupted` error as soon as `cancel` is set.
pub fn run<R: Read>(
    mut input: R,
    compression: &Compression,
    first_part_size: u64,
    counters: &Counters,
    cancel: &AtomicBool,
    emit: impl FnMut(Bytes) -> io::Result<()> + 'static,
) -> io::Result<StreamSummary> {
    let writer = parts::PartWriter::new(first_part_size, counters.stored.clone(), emit);
    let mut encoder = compress::encoder(compression, writer)?;
    let mut raw = Digest::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        raw.update(&buf[..n]);
        counters.raw.fetch_add(n as u64, Ordering::Relaxed);
        encoder.write_all(&buf[..n])?;
    }
    let writer = encoder.finish()?;
    let (stored, parts) = writer.finish()?;
    Ok(StreamSummary {
        raw: raw.finish(),
        stored,
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Mutex;

    /// A reader that returns its data in the given chunk sizes, like a pipe would.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        i: usize,
    }

    impl Read for Chunked {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pos >= self.data.len() {
                return Ok(0);
            }
            let want = self.sizes[self.i % self.sizes.len()].max(1);
            self.i += 1;
            let n = want.min(out.len()).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn stream(
        data: &[u8],
        sizes: Vec<usize>,
        c: Compression,
        part: u64,
    ) -> (StreamSummary, Vec<Bytes>) {
        let parts = Arc::new(Mutex::new(Vec::new()));
        let sink = parts.clone();
        let input = Chunked {
            data: data.to_vec(),
            pos: 0,
            sizes,
            i: 0,
        };
        let summary = run(
            input,
            &c,
            part,
            &Counters::default(),
            &AtomicBool::new(false),
            move |p| {
                sink.lock().unwrap().push(p);
                Ok(())
            },
        )
        .unwrap();
        let parts = parts.lock().unwrap().clone();
        (summary, parts)
    }

    fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
        // Mixed: runs (compressible) and noise, so compressors do real work.
        prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                (any::<u8>(), 0usize..2000).prop_map(|(b, n)| vec![b; n]),
            ],
            0..20,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn streamed_equals_one_shot(
            data in data_strategy(),
            sizes in prop::collection::vec(1usize..5000, 1..8),
            algorithm in prop_oneof![Just(Algorithm::Zstd), Just(Algorithm::Gzip), Just(Algorithm::None)],
            threads in 0u32..3,
            part in 1u64..4096,
        ) {
            let c = Compression::new(algorithm, None, Some(threads)).unwrap();
            let (summary, parts) = stream(&data, sizes, c, part);
            let stored: Vec<u8> = parts.concat();

            // Hashes and counts equal the one-shot computation on the whole buffers.
            prop_assert_eq!(&summary.raw, &Checksum::of(&data));
            prop_assert_eq!(&summary.stored, &Checksum::of(&stored));
            prop_assert_eq!(summary.parts as usize, parts.len());

            // Every part but the last is exactly the planned size.
            for (i, p) in parts.iter().enumerate().take(parts.len().saturating_sub(1)) {
                prop_assert_eq!(p.len() as u64, parts::part_size(part, i as u32 + 1));
            }

            // Decompressing the stored stream gives the input back.
            let mut back = Vec::new();
            compress::decoder(algorithm, &stored[..]).unwrap().read_to_end(&mut back).unwrap();
            prop_assert_eq!(back, data);
        }
    }

    #[test]
    fn cancel_stops_the_stream() {
        let err = run(
            &[1u8; 10][..],
            &Compression::new(Algorithm::None, None, Some(0)).unwrap(),
            4,
            &Counters::default(),
            &AtomicBool::new(true),
            |_| Ok(()),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
    }
}
