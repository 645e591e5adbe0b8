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
            Algorithm::Zstd => 3,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    pub algorithm: Algorithm,
    pub level: i32,
    /// zstd worker threads; 0 compresses on the calling thread.
    #[serde(default)]
    pub threads: u32,
}

impl Compression {
    pub fn new(
        algorithm: Algorithm,
        level: Option<i32>,
        threads: Option<u32>,
    ) -> Result<Self, String> {
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
        })
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
        assert_eq!(
            Compression::new(Algorithm::Zstd, None, Some(2))
                .unwrap()
                .level,
            3
        );
    }
}
