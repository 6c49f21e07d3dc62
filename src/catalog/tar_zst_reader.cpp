// zstd stream decoding plus a ustar/pax/GNU tar member walker. Every malformed byte is an error.
#include "catalog/tar_zst_reader.h"

#include <fmt/format.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kbgap::catalog {
namespace {

constexpr std::size_t kBlock = 512;

bool all_zero(const char* p, std::size_t n) {
  return std::all_of(p, p + n, [](char c) { return c == 0; });
}

// Octal field, NUL- or space-terminated, as tar writes it.
std::optional<std::uint64_t> parse_octal(const char* p, std::size_t n) {
  std::uint64_t v = 0;
  std::size_t i = 0;
  while (i < n && p[i] == ' ') ++i;
  bool any = false;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i) {
    v = v * 8 + static_cast<std::uint64_t>(p[i] - '0');
    any = true;
  }
  for (; i < n; ++i) {
    if (p[i] != ' ' && p[i] != '\0') return std::nullopt;
  }
  if (!any) return std::nullopt;
  return v;
}

std::string field(const char* p, std::size_t n) {
  return std::string(p, strnlen(p, n));
}

// A pax extended header's "path" record: "<len> path=<value>\n".
std::optional<std::string> pax_path(const std::string& records) {
  std::size_t pos = 0;
  while (pos < records.size()) {
    std::size_t space = records.find(' ', pos);
    if (space == std::string::npos) break;
    std::size_t len = 0;
    for (std::size_t i = pos; i < space; ++i) {
      if (records[i] < '0' || records[i] > '9') return std::nullopt;
      len = len * 10 + static_cast<std::size_t>(records[i] - '0');
    }
    if (len == 0 || pos + len > records.size()) return std::nullopt;
    std::string_view record(records.data() + space + 1, pos + len - space - 2);
    if (record.starts_with("path=")) return std::string(record.substr(5));
    pos += len;
  }
  return std::nullopt;
}

}  // namespace

void TarZstReader::DctxFree::operator()(ZSTD_DCtx_s* d) const {
  ZSTD_freeDCtx(d);
}

TarZstReader::TarZstReader() : dctx_(ZSTD_createDCtx()) {
  in_buf_.resize(ZSTD_DStreamInSize());
  out_buf_.resize(ZSTD_DStreamOutSize());
}
TarZstReader::TarZstReader(TarZstReader&&) noexcept = default;
TarZstReader& TarZstReader::operator=(TarZstReader&&) noexcept = default;
TarZstReader::~TarZstReader() = default;

Result<TarZstReader> TarZstReader::open_file(const std::string& path) {
  TarZstReader r;
  r.display_name_ = path;
  r.file_.reset(std::fopen(path.c_str(), "rb"));
  if (!r.file_) return io_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  if (std::fseek(r.file_.get(), 0, SEEK_END) == 0) {
    long size = std::ftell(r.file_.get());
    if (size > 0) r.compressed_size_ = static_cast<std::uint64_t>(size);
    std::fseek(r.file_.get(), 0, SEEK_SET);
  }
  return r;
}

TarZstReader TarZstReader::from_memory(std::span<const unsigned char> bytes,
                                       std::string display_name) {
  TarZstReader r;
  r.display_name_ = std::move(display_name);
  r.memory_ = bytes;
  r.compressed_size_ = bytes.size();
  return r;
}

Error TarZstReader::corrupt(const std::string& what) const {
  return invalid_input(fmt::format("{}: corrupt .tar.zst archive: {}", display_name_, what));
}

Result<std::size_t> TarZstReader::read_compressed(char* out, std::size_t n) {
  if (file_) {
    std::size_t got = std::fread(out, 1, n, file_.get());
    if (got == 0 && std::ferror(file_.get())) {
      return io_error(fmt::format("{}: read failed: {}", display_name_, std::strerror(errno)));
    }
    return got;
  }
  std::size_t got = std::min(n, memory_.size() - static_cast<std::size_t>(consumed_));
  if (got > 0) std::memcpy(out, memory_.data() + consumed_, got);  // data() may be null
  return got;
}

Result<bool> TarZstReader::fill_output() {
  for (;;) {
    if (in_pos_ == in_len_ && !pending_output_) {
      if (input_done_) return false;
      auto got = read_compressed(in_buf_.data(), in_buf_.size());
      if (!got) return got.error();
      consumed_ += *got;
      in_pos_ = 0;
      in_len_ = *got;
      if (*got == 0) {
        input_done_ = true;
        continue;
      }
    }
    ZSTD_inBuffer in{in_buf_.data(), in_len_, in_pos_};
    ZSTD_outBuffer outb{out_buf_.data(), out_buf_.size(), 0};
    std::size_t rc = ZSTD_decompressStream(dctx_.get(), &outb, &in);
    if (ZSTD_isError(rc)) return corrupt(ZSTD_getErrorName(rc));
    last_frame_hint_ = rc;
    pending_output_ = outb.pos == outb.size;  // zstd may hold more output for this input
    in_pos_ = in.pos;
    out_pos_ = 0;
    out_len_ = outb.pos;
    if (out_len_ > 0) return true;
  }
}

Result<void> TarZstReader::read_exact(char* out, std::size_t n) {
  while (n > 0) {
    if (out_pos_ == out_len_) {
      auto more = fill_output();
      if (!more) return more.error();
      if (!*more) {
        if (consumed_ == 0) return corrupt("empty file");
        return corrupt(last_frame_hint_ != 0 ? "truncated zstd stream"
                                             : "archive ends inside a tar member");
      }
    }
    std::size_t take = std::min(n, out_len_ - out_pos_);
    if (out) {
      std::memcpy(out, out_buf_.data() + out_pos_, take);
      out += take;
    }
    out_pos_ += take;
    n -= take;
  }
  return ok_result();
}

// Decodes the rest of the stream so that zstd checks the frame's checksum and completeness.
Result<void> TarZstReader::drain() {
  out_pos_ = out_len_;
  for (;;) {
    auto more = fill_output();
    if (!more) return more.error();
    if (!*more) break;
    out_pos_ = out_len_;
  }
  if (last_frame_hint_ != 0) return corrupt("truncated zstd stream");
  return ok_result();
}

Result<std::optional<ArchiveMember>> TarZstReader::next() {
  if (finished_) return std::optional<ArchiveMember>{};
  std::optional<std::string> long_name;
  char header[kBlock];
  for (;;) {
    if (auto r = read_exact(header, kBlock); !r) return r.error();
    if (all_zero(header, kBlock)) {
      finished_ = true;  // end-of-archive marker; what follows is padding
      if (auto r = drain(); !r) return r.error();
      return std::optional<ArchiveMember>{};
    }
    auto checksum = parse_octal(header + 148, 8);
    unsigned long sum = 0;
    for (std::size_t i = 0; i < kBlock; ++i) {
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(header[i]);
    }
    if (!checksum || *checksum != sum) return corrupt("tar header checksum mismatch");
    auto size = parse_octal(header + 124, 12);
    if (!size) return corrupt("tar header with an invalid size field");
    if (*size > kMaxMemberBytes) {
      return corrupt(
          fmt::format("member of {} bytes exceeds the limit of {}", *size, kMaxMemberBytes));
    }
    const char type = header[156];
    std::string content(*size, '\0');
    if (auto r = read_exact(content.data(), content.size()); !r) return r.error();
    std::size_t padding = (kBlock - *size % kBlock) % kBlock;
    if (auto r = read_exact(nullptr, padding); !r) return r.error();

    if (type == 'L') {  // GNU long name for the next member
      long_name = field(content.data(), content.size());
      continue;
    }
    if (type == 'x') {  // pax extended header for the next member
      if (auto p = pax_path(content)) long_name = std::move(*p);
      continue;
    }
    if (type != '0' && type != '\0') {  // directories, links, global headers: nothing to read
      long_name.reset();
      continue;
    }
    ArchiveMember m;
    if (long_name) {
      m.name = std::move(*long_name);
    } else {
      std::string prefix = field(header + 345, 155);
      m.name = field(header, 100);
      if (!prefix.empty() && std::memcmp(header + 257, "ustar", 5) == 0) {
        m.name = prefix + "/" + m.name;
      }
    }
    m.content = std::move(content);
    return std::optional<ArchiveMember>(std::move(m));
  }
}

}  // namespace kbgap::catalog
