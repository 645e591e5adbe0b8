//! Compression of the archive stream: zstd (multi-threaded), gzip or none.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Zstd,
    Gzip,
    None,
}

impl Algorithm {
    /// Suffix of the stored object after `.dump`.
    pub fn extension(self) -> &'static str {
        match self {
            Algorithm::Zstd => ".zst",
            Algorithm::Gzip => ".gz",
            Algorithm::None => "",
        }
    }

    pub fn default_level(self) -> i32 {
        match self {
            Algorithm::Zstd => TUNED_BASE_LEVEL,
            Algorithm::Gzip => 6,
            Algorithm::None => 0,
        }
    }

    pub fn level_range(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Algorithm::Zstd => 1..=22,
            Algorithm::Gzip => 0..=9,
            Algorithm::None => 0..=0,
        }
    }
}

/// The zstd level pgsafe's default parameters start from.
const TUNED_BASE_LEVEL: i32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    pub algorithm: Algorithm,
    pub level: i32,
    /// zstd worker threads; 0 compresses on the calling thread.
    #[serde(default)]
    pub threads: u32,
    /// zstd without an explicit level: pgsafe's parameters for pg_dump archives (see
    /// [`TUNED`]), measured in docs/benchmarks.md.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tuned: bool,
}

/// pgsafe's default zstd parameters, for the COPY text of pg_dump archives: the greedy strategy
/// with a deeper search (4) and a minimum match of 6 bytes, which skips the short matches that
/// word-like text is full of and that cost more to encode than they save, in a 1 MiB window
/// (most repeats in table data are near; a smaller window is also less memory per zstd worker).
/// On the benchmark's 1 GB database this stores less than pg_dump's gzip in a third of the
/// CPU time of zstd level 7, its nearest plain level.
pub const TUNED: &str = "greedy, window 2^20, hash 2^19, chain 2^18, search 2^4, min match 6";

impl Compression {
    pub fn new(
        algorithm: Algorithm,
        level: Option<i32>,
        threads: Option<u32>,
    ) -> Result<Self, String> {
        let tuned = algorithm == Algorithm::Zstd && level.is_none();
        let level = level.unwrap_or(algorithm.default_level());
        if !algorithm.level_range().contains(&level) {
            let r = algorithm.level_range();
            return Err(format!(
                "compression level {level} is out of range for {algorithm:?}: use {} to {}",
                r.start(),
                r.end()
            ));
        }
        let threads = threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        });
        Ok(Compression {
            algorithm,
            level,
            threads,
            tuned,
        })
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.algorithm {
            Algorithm::Zstd if self.tuned => {
                write!(f, "zstd, pgsafe's default parameters ({TUNED})")
            }
            Algorithm::Zstd => write!(f, "zstd level {}", self.level),
            Algorithm::Gzip => write!(f, "gzip level {}", self.level),
            Algorithm::None => write!(f, "none"),
        }
    }
}

/// A writer that (de)compresses a stream and hands its inner writer back when it is finished.
pub trait Transform<W>: Write {
    fn finish(self: Box<Self>) -> io::Result<W>;
}

impl<W: Write> Transform<W> for zstd::stream::write::Encoder<'static, W> {
    fn finish(self: Box<Self>) -> io::Result<W> {
        (*self).finish()
    }
}

impl<W: Write> Transform<W> for flate2::write::GzEncoder<W> {
    fn finish(self: Box<Self>) -> io::Result<W> {
        (*self).finish()
    }
}

struct Identity<W>(W);

impl<W: Write> Write for Identity<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Transform<W> for Identity<W> {
    fn finish(self: Box<Self>) -> io::Result<W> {
        Ok(self.0)
    }
}

pub fn encoder<W: Write + 'static>(c: &Compression, inner: W) -> io::Result<Box<dyn Transform<W>>> {
    Ok(match c.algorithm {
        Algorithm::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(inner, c.level)?;
            if c.tuned {
                use zstd::zstd_safe::{CParameter, Strategy};
                for p in [
                    CParameter::Strategy(Strategy::ZSTD_greedy),
                    CParameter::WindowLog(20),
                    CParameter::HashLog(19),
                    CParameter::ChainLog(18),
                    CParameter::SearchLog(4),
                    CParameter::MinMatch(6),
                    CParameter::TargetLength(0),
                ] {
                    e.set_parameter(p)?;
                }
            }
            if c.threads > 0 {
                e.multithread(c.threads)?;
            }
            Box::new(e)
        }
        Algorithm::Gzip => Box::new(flate2::write::GzEncoder::new(
            inner,
            flate2::Compression::new(c.level as u32),
        )),
        Algorithm::None => Box::new(Identity(inner)),
    })
}

struct ZstdDecoder<W: Write>(zstd::stream::write::Decoder<'static, W>);

impl<W: Write> Write for ZstdDecoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Transform<W> for ZstdDecoder<W> {
    fn finish(mut self: Box<Self>) -> io::Result<W> {
        self.0.flush()?;
        Ok(self.0.into_inner())
    }
}

impl<W: Write> Transform<W> for flate2::write::MultiGzDecoder<W> {
    fn finish(self: Box<Self>) -> io::Result<W> {
        (*self).finish()
    }
}

/// A writer that decompresses what is written into `inner` (push-style, for downloads).
pub fn decoder_writer<W: Write + 'static>(
    algorithm: Algorithm,
    inner: W,
) -> io::Result<Box<dyn Transform<W>>> {
    Ok(match algorithm {
        Algorithm::Zstd => Box::new(ZstdDecoder(zstd::stream::write::Decoder::new(inner)?)),
        Algorithm::Gzip => Box::new(flate2::write::MultiGzDecoder::new(inner)),
        Algorithm::None => Box::new(Identity(inner)),
    })
}

/// A reader that decompresses `inner`.
pub fn decoder<'a, R: Read + 'a>(algorithm: Algorithm, inner: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match algorithm {
        Algorithm::Zstd => Box::new(zstd::stream::read::Decoder::new(inner)?),
        Algorithm::Gzip => Box::new(flate2::read::MultiGzDecoder::new(inner)),
        Algorithm::None => Box::new(inner),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_decoders_invert_the_encoders() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for algorithm in [Algorithm::Zstd, Algorithm::Gzip, Algorithm::None] {
            let c = Compression::new(algorithm, None, Some(0)).unwrap();
            let mut e = encoder(&c, Vec::new()).unwrap();
            e.write_all(&data).unwrap();
            let packed = e.finish().unwrap();
            let mut d = decoder_writer(algorithm, Vec::new()).unwrap();
            for chunk in packed.chunks(777) {
                d.write_all(chunk).unwrap();
            }
            assert_eq!(d.finish().unwrap(), data, "{algorithm:?}");
        }
    }

    #[test]
    fn levels_are_checked() {
        assert!(Compression::new(Algorithm::Zstd, Some(23), None).is_err());
        assert!(Compression::new(Algorithm::Gzip, Some(10), None).is_err());
        let default = Compression::new(Algorithm::Zstd, None, Some(2)).unwrap();
        assert!(default.tuned);
        let explicit = Compression::new(Algorithm::Zstd, Some(3), Some(2)).unwrap();
        assert_eq!((explicit.level, explicit.tuned), (3, false));
        assert!(!Compression::new(Algorithm::Gzip, None, None).unwrap().tuned);
    }
}
