#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <sstream>
#include <thread>

#include "sumi/tensor/tensor.hpp"

using namespace sumi;
using TF = Tensor<float>;
using TD = Tensor<double>;

TEMPLATE_TEST_CASE("factories fill shape and values", "[tensor]", float, double) {
  using T = Tensor<TestType>;
  const T z = T::zeros({2, 3, 4, 5, 6});
  REQUIRE(z.dim() == 5);
  REQUIRE(z.numel() == 720);
  REQUIRE(z.strides() == Shape{360, 120, 30, 6, 1});
  REQUIRE(z.at({1, 2, 3, 4, 5}) == 0);
  REQUIRE(T::ones({3}).at({2}) == 1);
  REQUIRE(T::full({2, 2}, TestType(2.5)).at({1, 1}) == TestType(2.5));
  const T r = T::arange(0, 5, 2);
  REQUIRE(r.shape() == Shape{3});
  REQUIRE(r.at({2}) == 4);
  REQUIRE(reinterpret_cast<std::uintptr_t>(z.data()) % kTensorAlignment == 0);
}

TEST_CASE("random factories are reproducible and have the right moments", "[tensor][random]") {
  Generator g1(42), g2(42), g3(43);
  const TF a = TF::randn({10000}, g1), b = TF::randn({10000}, g2), c = TF::randn({10000}, g3);
  REQUIRE(std::equal(a.data(), a.data() + a.numel(), b.data()));
  REQUIRE_FALSE(std::equal(a.data(), a.data() + a.numel(), c.data()));
  double mean = 0, var = 0;
  for (int64_t i = 0; i < a.numel(); ++i) mean += a.data()[i];
  mean /= double(a.numel());
  for (int64_t i = 0; i < a.numel(); ++i) var += (a.data()[i] - mean) * (a.data()[i] - mean);
  var /= double(a.numel());
  REQUIRE(std::abs(mean) < 0.03);
  REQUIRE(std::abs(var - 1) < 0.05);
  const TF u = TF::rand({10000}, g1, -2, 3);
  REQUIRE(*std::min_element(u.data(), u.data() + u.numel()) >= -2);
  REQUIRE(*std::max_element(u.data(), u.data() + u.numel()) < 3);
  // Bounds that would clamp every draw to one value, and a negative spread, are refused as PyTorch's
  // uniform_ and normal_ refuse them; equal bounds give that value.
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (const auto& [low, high] : {std::pair{1.0f, 0.0f}, {0.0f, inf}, {-inf, 0.0f}, {nan, 1.0f}, {0.0f, nan}})
    CHECK_THROWS_WITH(
        TF::rand({2, 3}, g1, low, high),
        Catch::Contains("Tensor::rand: need finite bounds low <= high") && Catch::Contains("[2, 3]"));
  CHECK(TF::rand({2}, g1, 0.5f, 0.5f).at({1}) == 0.5f);
  for (const auto& [mean, stddev] : {std::pair{0.0f, -1.0f}, {0.0f, nan}, {inf, 1.0f}, {0.0f, inf}})
    CHECK_THROWS_WITH(TF::randn({4}, g1, mean, stddev),
                      Catch::Contains("Tensor::randn: need a finite mean and a finite stddev >= 0") &&
                          Catch::Contains("[4]"));
  CHECK(TF::randn({3}, g1, 2.0f, 0.0f).at({2}) == 2.0f);
}

TEST_CASE("rand stays below high when the draw rounds up to it", "[tensor][random]") {
  // A state whose next xoshiro256** output is all ones: uniform() is then 1 - 2^-53, which rounds to 1.0f.
  const auto inverse = [](uint64_t a) {  // of an odd number, mod 2^64 (Newton's iteration)
    uint64_t x = a;
    for (int i = 0; i < 6; ++i) x *= 2 - a * x;
    return x;
  };
  const uint64_t scrambled = std::rotr(std::numeric_limits<uint64_t>::max() * inverse(9), 7);
  Generator gen(0);
  Generator::State state = gen.get_state();
  state.words[1] = scrambled * inverse(5);
  gen.set_state(state);
  Generator copy = gen;
  REQUIRE(float(copy.uniform()) == 1.0f);
  const float drawn = TF::rand({1}, gen).item();
  CHECK(drawn < 1.0f);
  CHECK(drawn == std::nextafter(1.0f, 0.0f));
}

TEST_CASE("the generator gives fixed numbers for a seed on every platform", "[tensor][random]") {
  // xoshiro256** seeded by splitmix64 is fully specified; these are its first outputs for seed 0.
  Generator gen(0);
  const uint64_t first = gen.next_u64();
  Generator again(0);
  REQUIRE(again.next_u64() == first);
  // Independent of threads: a generator used on another thread gives the same sequence.
  uint64_t on_thread = 0;
  std::thread([&] {
    Generator g(0);
    on_thread = g.next_u64();
  }).join();
  REQUIRE(on_thread == first);
  REQUIRE(first == 0x99ec5f36cb75f2b4ull);
}

TEST_CASE("a generator's saved state, restored, continues its sequence; the text form round-trips",
          "[tensor][random]") {
  Generator gen(3);
  for (int i = 0; i < 5; ++i) gen.next_u64();
  gen.normal();  // leaves a spare normal, which is part of the state
  const Generator::State saved = gen.get_state();
  REQUIRE(saved.has_spare_normal);
  const double next_normal = gen.normal();
  const uint64_t next_word = gen.next_u64();

  Generator restored(99);
  restored.set_state(saved);
  REQUIRE(restored.normal() == next_normal);
  REQUIRE(restored.next_u64() == next_word);

  const std::string text = generator_state_to_string(saved);
  REQUIRE(text.size() == 6 * 17 - 1);
  REQUIRE(generator_state_from_string(text) == saved);
  Generator from_text(1);
  from_text.set_state(generator_state_from_string(text));
  REQUIRE(from_text.normal() == next_normal);

  const std::vector<std::string> bad_texts = {"", "0 1 2", text + " 0000000000000000",
                                              text.substr(0, 16) + "g" + text.substr(17),
                                              text.substr(0, text.size() - 1)};
  for (const std::string& bad : bad_texts)
    REQUIRE_THROWS_WITH(generator_state_from_string(bad), Catch::Contains("generator state"));
  // The all-zero state draws 0 for ever (a normal never comes): refused as text and as a state.
  const std::string zero =
      "0000000000000000 0000000000000000 0000000000000000 0000000000000000 "
      "0000000000000000 0000000000000000";
  REQUIRE_THROWS_WITH(generator_state_from_string(zero), Catch::Contains("four zero state words"));
  REQUIRE_THROWS_WITH(restored.set_state(Generator::State{}),
                      Catch::Contains("all four state words are zero"));
  REQUIRE(restored.next_u64() != 0);  // unchanged by the refused state
}

TEST_CASE("views share storage; reshape, slice, select and transpose", "[tensor]") {
  TF t = TF::arange(0, 24).view({2, 3, 4});
  TF v = t.view({6, -1});
  REQUIRE(v.shape() == Shape{6, 4});
  v.at({5, 3}) = 100;
  REQUIRE(t.at({1, 2, 3}) == 100);
  REQUIRE(v.shares_storage_with(t));

  TF s = t.slice(1, 2);
  REQUIRE(s.shape() == Shape{1, 3, 4});
  REQUIRE(s.at({0, 0, 0}) == 12);
  REQUIRE(s.is_contiguous());
  TF row = t.select(1).select(2);
  REQUIRE(row.shape() == Shape{4});
  REQUIRE(row.at({1}) == 21);

  TF tr = t.transpose(1, 2);
  REQUIRE(tr.shape() == Shape{2, 4, 3});
  REQUIRE_FALSE(tr.is_contiguous());
  REQUIRE(tr.at({0, 3, 1}) == t.at({0, 1, 3}));
  TF c = tr.contiguous();
  REQUIRE(c.is_contiguous());
  REQUIRE_FALSE(c.shares_storage_with(t));
  REQUIRE(c.at({1, 2, 0}) == t.at({1, 0, 2}));
  REQUIRE(tr.reshape({24}).at({1}) == t.at({0, 1, 0}));
  REQUIRE_THROWS_WITH(tr.view({24}), Catch::Contains("not contiguous"));
  // As PyTorch counts it, the stride of a size-1 dimension does not matter and an empty tensor is
  // contiguous: a row of t transposed into a column views it without a copy.
  const TF column = t.select(0).select(0).view({1, 4}).transpose(0, 1);
  REQUIRE(column.strides() == Shape{1, 4});
  REQUIRE(column.is_contiguous());
  REQUIRE(column.contiguous().shares_storage_with(t));
  REQUIRE(column.view({2, 2}).at({1, 0}) == t.at({0, 0, 2}));
  REQUIRE(t.narrow(2, 1, 0).transpose(0, 2).is_contiguous());
  REQUIRE_FALSE(t.narrow(2, 1, 1).squeeze(2).is_contiguous());  // [2, 3] with strides (12, 4)
  REQUIRE_THROWS_WITH(t.view({5, 5}), Catch::Contains("[5, 5]") && Catch::Contains("[2, 3, 4]"));
  REQUIRE_THROWS_AS(t.slice(1, 3), std::out_of_range);
  REQUIRE_THROWS_AS(t.at({0, 3, 0}), std::out_of_range);
}

TEST_CASE("clone, copy_ and fill_ work on strided views", "[tensor]") {
  TD t = TD::arange(0, 6).view({2, 3});
  TD tr = t.transpose(0, 1);
  TD k = tr.clone();
  k.fill_(7);
  REQUIRE(t.at({1, 2}) == 5);
  tr.fill_(1);
  REQUIRE(t.at({1, 2}) == 1);
  tr.copy_(TD::arange(0, 6).view({3, 2}));
  REQUIRE(t.at({0, 1}) == 2);  // tr[1][0] = 2
  REQUIRE_THROWS_WITH(t.copy_(TD::zeros({3, 2})), Catch::Contains("[3, 2]") && Catch::Contains("[2, 3]"));
  REQUIRE(t.to<float>().at({0, 1}) == 2.0f);
}

TEST_CASE("Eigen maps are zero-copy", "[tensor][eigen]") {
  TF m = TF::zeros({2, 3});
  m.matrix()(1, 2) = 5;
  REQUIRE(m.at({1, 2}) == 5);
  m.vector()[0] = 3;
  REQUIRE(m.at({0, 0}) == 3);
  Eigen::MatrixXd e(2, 2);
  e << 1, 2, 3, 4;
  const TD from = TD::from_eigen(e);
  REQUIRE(from.at({1, 0}) == 3);
  REQUIRE_THROWS_WITH(TF::zeros({2, 3, 4}).matrix(), Catch::Contains("not 2-d"));
}

TEST_CASE("printing shows values and shape", "[tensor]") {
  std::ostringstream os;
  os << TF::arange(0, 4).view({2, 2});
  REQUIRE(os.str() == "tensor([[0, 1],\n[2, 3]], shape=[2, 2])");
  std::ostringstream big;
  big << TF::arange(0, 100);
  REQUIRE(big.str().find("...") != std::string::npos);
  REQUIRE(big.str().find("99") != std::string::npos);
}

TEST_CASE("the caching allocator reuses blocks of a freed shape", "[tensor][allocator]") {
  auto& alloc = CachingAllocator::instance();
  { TF warm = TF::empty({123, 457}); }
  const AllocatorStats before = alloc.stats();
  for (int i = 0; i < 10; ++i) {
    TF t = TF::empty({123, 457});
    t.fill_(1);
  }
  const AllocatorStats after = alloc.stats();
  REQUIRE(after.heap_allocations == before.heap_allocations);
  REQUIRE(after.cache_hits >= before.cache_hits + 10);
}

TEST_CASE("the caching allocator refuses tensor memory beyond its limit, the machine's by default",
          "[tensor][allocator]") {
  auto& alloc = CachingAllocator::instance();
  const std::size_t machine = alloc.memory_limit();
  CHECK(machine == detail::system_memory_bytes());
  CHECK(machine > (std::size_t(64) << 20));
  // Overcommitted memory is not refused by the system: without the limit this would be granted and the
  // process killed once it touched the pages.
  CHECK_THROWS_AS(TF::empty({int64_t(machine / sizeof(float)) + 1}), std::bad_alloc);
  alloc.release_cached();
  alloc.set_memory_limit(alloc.stats().bytes_in_use + (std::size_t(64) << 20));
  {
    TF fits = TF::empty({int64_t(40) << 18});  // 40 MB
    fits.fill_(1);
    CHECK_THROWS_AS(TF::empty({int64_t(40) << 18}), std::bad_alloc);  // 80 MB in all
    CHECK(fits.data()[0] == 1.0f);
  }
  // A cached block counts as much as a new one: the 40 MB block freed above is not handed out again once
  // the limit leaves no room for it.
  alloc.set_memory_limit(alloc.stats().bytes_in_use + (std::size_t(8) << 20));
  const uint64_t hits = alloc.stats().cache_hits;
  CHECK_THROWS_AS(TF::empty({int64_t(40) << 18}), std::bad_alloc);
  CHECK(alloc.stats().cache_hits == hits);
  alloc.set_memory_limit(0);
  CHECK(alloc.memory_limit() == machine);
  TF both[2] = {TF::empty({int64_t(40) << 18}), TF::empty({int64_t(40) << 18})};
  CHECK(both[1].numel() == both[0].numel());
}

TEST_CASE("the caching allocator gives idle blocks back once the cache is over its limit",
          "[tensor][allocator]") {
  auto& alloc = CachingAllocator::instance();
  alloc.release_cached();
  // Cache more than the limit in blocks of one size (mapped blocks: 4 MB each).
  const int64_t floats = 1 << 20;
  const int count = int(CachingAllocator::kCacheLimit / (floats * sizeof(float))) + 4;
  {
    std::vector<TF> blocks;
    for (int i = 0; i < count; ++i) blocks.push_back(TF::empty({floats}));
  }
  REQUIRE(alloc.stats().bytes_cached > CachingAllocator::kCacheLimit);
  // A block of another size is not in the cache: the cache shrinks to fit it within the limit.
  const AllocatorStats before = alloc.stats();
  TF other = TF::empty({floats + 1024});
  const AllocatorStats after = alloc.stats();
  CHECK(after.heap_allocations == before.heap_allocations + 1);
  CHECK(after.bytes_cached + (floats + 1024) * sizeof(float) <= CachingAllocator::kCacheLimit);
  CHECK(after.bytes_cached >= CachingAllocator::kCacheLimit - 2 * floats * sizeof(float));
  // The blocks left in the cache are still handed out.
  TF again = TF::empty({floats});
  CHECK(alloc.stats().heap_allocations == after.heap_allocations);
  other.fill_(2), again.fill_(1);
  CHECK(other.data()[floats] == 2.0f);
  CHECK(again.data()[floats - 1] == 1.0f);
}

TEST_CASE("the caching allocator serves a request from a cached block of up to twice its size",
          "[tensor][allocator]") {
  auto& alloc = CachingAllocator::instance();
  alloc.release_cached();
  const float* first = nullptr;
  {
    TF big = TF::empty({1000});
    first = big.data();
  }
  const AllocatorStats before = alloc.stats();
  {
    TF smaller = TF::empty({700});  // best fit: the cached 1000-float block
    CHECK(smaller.data() == first);
    CHECK(alloc.stats().heap_allocations == before.heap_allocations);
    CHECK(alloc.stats().bytes_in_use == before.bytes_in_use + 4032);  // the whole block: 1000 floats rounded
  }
  CHECK(alloc.stats().bytes_cached == before.bytes_cached);
  {
    TF same = TF::empty({1000});  // the block went back to the cache under its own size
    CHECK(same.data() == first);
    TF half = TF::empty({400});  // the cache holds nothing within twice 400 floats
    CHECK(alloc.stats().heap_allocations == before.heap_allocations + 1);
  }
}

TEST_CASE("an undefined tensor has no elements and is refused where its data would be read",
          "[tensor][errors]") {
  TF none;
  REQUIRE_FALSE(none.defined());
  REQUIRE(none.numel() == 0);
  REQUIRE_FALSE(none.clone().defined());
  REQUIRE_FALSE(none.to<double>().defined());
  REQUIRE_THROWS_WITH(none.item(), Catch::Contains("Tensor::item") && Catch::Contains("undefined"));
  REQUIRE_THROWS_WITH(none.fill_(1), Catch::Contains("Tensor::fill_") && Catch::Contains("undefined"));
  REQUIRE_THROWS_WITH(none.at({}), Catch::Contains("undefined"));
  TF one = TF::scalar(3);
  REQUIRE_THROWS_WITH(one.copy_(none), Catch::Contains("Tensor::copy_") && Catch::Contains("undefined"));
  REQUIRE_THROWS_WITH(none.copy_(one), Catch::Contains("undefined"));
  REQUIRE(one.item() == 3);
}

TEST_CASE("sizes that overflow are refused before anything is allocated", "[tensor][errors]") {
  // 2^62 floats are 2^64 bytes: the byte count wraps to 0.
  REQUIRE_THROWS_AS(TF::zeros({int64_t(1) << 62}), std::length_error);
  REQUIRE_THROWS_WITH(TF::zeros({int64_t(1) << 31, int64_t(1) << 31, 4}),
                      Catch::Contains("[2147483648, 2147483648, 4]") && Catch::Contains("int64_t"));
  // An empty tensor's outer strides are products of the other sizes, so they must fit too.
  REQUIRE_THROWS_AS(TF::zeros({0, int64_t(1) << 40, int64_t(1) << 40}), std::length_error);
  REQUIRE(TF::zeros({0, int64_t(1) << 30, 4}).numel() == 0);
  REQUIRE_THROWS_WITH(TF::arange(0, std::numeric_limits<float>::infinity()),
                      Catch::Contains("Tensor::arange"));
  REQUIRE_THROWS_WITH(TD::arange(0, std::nan("")), Catch::Contains("Tensor::arange"));
  REQUIRE(TD::arange(5, 0).numel() == 0);
  // An index at the end of int64_t's range is out of bounds, not an overflow.
  REQUIRE_THROWS_WITH(TF::zeros({3}).select(std::numeric_limits<int64_t>::max()),
                      Catch::Contains("Tensor::select: index 9223372036854775807") && Catch::Contains("[3]"));
  REQUIRE_THROWS_WITH(TF::zeros({3}).select(-1), Catch::Contains("Tensor::select"));
  // The allocator's own callers: a size whose rounding up to a page would wrap is refused, not served with
  // a 1-byte block.
  REQUIRE_THROWS_AS(sumi::CachingAllocator::instance().allocate(std::numeric_limits<std::size_t>::max() - 10),
                    std::bad_alloc);
}

TEST_CASE("view refuses negative sizes and an ambiguous -1", "[tensor][errors]") {
  const TF t = TF::zeros({6});
  REQUIRE_THROWS_WITH(t.view({-2, -3}),
                      Catch::Contains("negative size -2") && Catch::Contains("Tensor::view"));
  REQUIRE_THROWS_WITH(t.view({-1, -6}), Catch::Contains("negative size -6"));
  REQUIRE_THROWS_WITH(TF::zeros({0, 3}).view({0, -1}), Catch::Contains("ambiguous"));
  REQUIRE_THROWS_WITH(t.view({-1, -1}), Catch::Contains("more than one -1"));
  REQUIRE(t.view({-1, 2}).shape() == Shape{3, 2});
}

TEST_CASE("copy_ from a view of the same storage copies the source as it was", "[tensor]") {
  TD a = TD::arange(0, 4).view({2, 2});
  TD t = a.transpose(0, 1);
  t.copy_(a);  // t[i][j] = a[i][j], i.e. a[j][i] = old a[i][j]: a becomes its own transpose
  REQUIRE(a.at({0, 0}) == 0);
  REQUIRE(a.at({0, 1}) == 2);
  REQUIRE(a.at({1, 0}) == 1);
  REQUIRE(a.at({1, 1}) == 3);
  a.copy_(a);
  REQUIRE(a.at({0, 1}) == 2);
}

TEST_CASE("Generator::below refuses an empty range", "[tensor][random][errors]") {
  Generator g(1);
  REQUIRE_THROWS_WITH(g.below(0), Catch::Contains("Generator::below"));
  REQUIRE(g.below(1) == 0);
}
