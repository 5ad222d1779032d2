#pragma once
// All of sumi's SVG charts: line charts (loss curves, log-y), class-coloured scatter plots and confusion
// matrices. Each also has its own header.
#include "sumi/plot/confusion_matrix.hpp"
#include "sumi/plot/line_chart.hpp"
#include "sumi/plot/scatter_chart.hpp"
