#pragma once
// stb_image_write compiled into every translation unit that includes it, with internal linkage (STATIC), so
// the header-only library needs no separate implementation file and cannot clash with a user's own copy.
// stb is third-party code: its warnings are silenced here rather than in sumi's build flags.
#ifndef SUMI_PLOT_DETAIL_STB_IMAGE_WRITE_INCLUDED
#define SUMI_PLOT_DETAIL_STB_IMAGE_WRITE_INCLUDED

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

#endif  // SUMI_PLOT_DETAIL_STB_IMAGE_WRITE_INCLUDED
