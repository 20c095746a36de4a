//! Writing a generated data set to disk in the AgeDB-DIR layout, and a preview grid.

use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::codecs::png::PngEncoder;
use image::{ColorType, ImageEncoder, Rgb, RgbImage};
use rayon::prelude::*;

use super::{FaceConfig, Identity, Nuisance, SyntheticFaces, render_face, stream_rng};
use crate::dataset::Split;
use crate::error::{DataError, Result};

/// Name of the index file [`write_agedb_layout`] writes.
const INDEX_NAME: &str = "agedb.csv";

fn io_error(path: &Path, message: impl std::fmt::Display) -> DataError {
    DataError::Io {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Creates `path` for writing, refusing to replace an existing file.
fn create_new(path: &Path) -> Result<BufWriter<fs::File>> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(BufWriter::new)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                io_error(path, "already exists; refusing to overwrite it")
            }
            _ => io_error(path, e),
        })
}

/// The image file of item `index` of `split`, relative to the data set folder.
fn relative_path(split: Split, index: usize) -> String {
    format!("images/{split}/{index:05}.png")
}

/// Writes `faces` under `dir` as the file loader expects (`dataset::read_index(dir/agedb.csv,
/// dir)`): one PNG per image at `images/{train,val,test}/NNNNN.png` and the index `agedb.csv`
/// with the columns `age,path,split,identity`, written last. Creates `dir` if needed, refuses
/// to overwrite any existing file (checked before anything is written) and returns the index
/// path. A split whose images, ages and identities differ in number is refused.
pub fn write_agedb_layout(dir: &Path, faces: &SyntheticFaces) -> Result<PathBuf> {
    for split in Split::ALL {
        let s = faces.split(split);
        for (what, n) in [
            ("images and ages of a split", s.images.len()),
            ("identities and ages of a split", s.identities.len()),
        ] {
            if n != s.len() {
                return Err(DataError::LengthMismatch {
                    what,
                    left: n,
                    right: s.len(),
                });
            }
        }
    }
    let index_path = dir.join(INDEX_NAME);
    let items: Vec<(Split, usize)> = Split::ALL
        .iter()
        .flat_map(|&s| (0..faces.split(s).len()).map(move |i| (s, i)))
        .collect();
    for path in std::iter::once(index_path.clone())
        .chain(items.iter().map(|&(s, i)| dir.join(relative_path(s, i))))
    {
        if path.exists() {
            return Err(io_error(&path, "already exists; refusing to overwrite it"));
        }
    }
    for split in Split::ALL {
        let sub = dir.join("images").join(split.as_str());
        fs::create_dir_all(&sub).map_err(|e| io_error(&sub, e))?;
    }
    items.par_iter().try_for_each(|&(split, i)| {
        let path = dir.join(relative_path(split, i));
        let img = &faces.split(split).images[i];
        let mut out = create_new(&path)?;
        PngEncoder::new(&mut out)
            .write_image(img.as_raw(), img.width(), img.height(), ColorType::Rgb8)
            .map_err(|e| io_error(&path, e))?;
        out.flush().map_err(|e| io_error(&path, e))
    })?;
    let mut csv = String::from("age,path,split,identity\n");
    for &(split, i) in &items {
        let s = faces.split(split);
        csv.push_str(&format!(
            "{},{},{split},{}\n",
            s.ages[i],
            relative_path(split, i),
            s.identities[i]
        ));
    }
    let mut out = create_new(&index_path)?;
    out.write_all(csv.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| io_error(&index_path, e))?;
    Ok(index_path)
}

/// A grid of faces for a quick look: one row per person (drawn from `seed`), one column per
/// age in `ages`, each person photographed under the same conditions across their row (without
/// the per-photo age jitter), every cell enlarged `zoom` times (nearest neighbour) and framed
/// by a 2-pixel white border.
pub fn preview_grid(
    seed: u64,
    ages: &[u32],
    people: usize,
    cfg: &FaceConfig,
    zoom: u32,
) -> RgbImage {
    let cell = cfg.size * zoom.max(1);
    let pitch = cell + 2;
    let (w, h) = (ages.len() as u32 * pitch + 2, people as u32 * pitch + 2);
    let mut grid = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let mut rng = stream_rng(seed, 6, 0);
    for row in 0..people as u32 {
        let id = Identity::sample(&mut rng);
        let nz = Nuisance {
            age_jitter: 0.0,
            ..Nuisance::sample(&mut rng)
        };
        for (col, &age) in (0u32..).zip(ages) {
            let img = render_face(f64::from(age), &id, &nz, cfg);
            let (x0, y0) = (2 + col * pitch, 2 + row * pitch);
            for y in 0..cell {
                for x in 0..cell {
                    let p = *img.get_pixel(x * cfg.size / cell, y * cfg.size / cell);
                    grid.put_pixel(x0 + x, y0 + y, p);
                }
            }
        }
    }
    grid
}
