//! Decoding image files for the dataset: the one place that opens an image, used both when an
//! index is checked and when a batch is loaded.

use std::path::Path;

use image::RgbImage;

/// Decodes an image file to 8-bit RGB; the format is sniffed from the content (so a PNG named
/// `.jpg` still loads).
pub(crate) fn decode_rgb(path: &Path) -> std::result::Result<RgbImage, String> {
    let img = image::io::Reader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    if img.width() == 0 || img.height() == 0 {
        return Err("the image has no pixels".into());
    }
    Ok(img.into_rgb8())
}
