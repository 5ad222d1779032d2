#pragma once
// stb_image (PNG/JPEG/BMP/... decoding) compiled into every translation unit that includes it, with internal
// linkage (STATIC), so the header-only library needs no separate implementation file and cannot clash with a
// user's own copy. stb is third-party code: its warnings are silenced here rather than in sumi's build flags.
#ifndef SUMI_DATA_DETAIL_STB_IMAGE_INCLUDED
#define SUMI_DATA_DETAIL_STB_IMAGE_INCLUDED

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

#endif  // SUMI_DATA_DETAIL_STB_IMAGE_INCLUDED
