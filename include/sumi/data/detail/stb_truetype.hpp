#pragma once
// stb_truetype (TrueType/OpenType glyph rasterisation) compiled into every translation unit that includes it,
// with internal linkage (STATIC), as stb_image.hpp does for image decoding. stb is third-party code: its
// warnings are silenced here rather than in sumi's build flags.
#ifndef SUMI_DATA_DETAIL_STB_TRUETYPE_INCLUDED
#define SUMI_DATA_DETAIL_STB_TRUETYPE_INCLUDED

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#define STBTT_STATIC
#define STB_TRUETYPE_IMPLEMENTATION
#include <stb/stb_truetype.h>
#pragma GCC diagnostic pop

#endif  // SUMI_DATA_DETAIL_STB_TRUETYPE_INCLUDED
