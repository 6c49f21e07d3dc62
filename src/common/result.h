// Error values and Result<T>: how every path that sees untrusted input reports failure.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace kbgap {

enum class ErrorCode {
  kInvalidInput,  // the input (file, request, query) is malformed or not what was expected
  kNotFound,      // a named thing does not exist
  kIo,            // the operating system refused a read or write
  kStorage,       // the database failed
  kUnavailable,   // the database cannot be reached now (down, restarting): worth retrying
  kInternal,      // a bug: an invariant did not hold
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

inline Error invalid_input(std::string message) {
  return {ErrorCode::kInvalidInput, std::move(message)};
}
inline Error io_error(std::string message) {
  return {ErrorCode::kIo, std::move(message)};
}
inline Error storage_error(std::string message) {
  return {ErrorCode::kStorage, std::move(message)};
}
inline Error unavailable_error(std::string message) {
  return {ErrorCode::kUnavailable, std::move(message)};
}

// A value or an Error. Deliberately small: check ok(), then use value() or error().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

inline Result<void> ok_result() {
  return {};
}

}  // namespace kbgap

// Returns the error of a Result-valued expression from the enclosing function.
#define KBGAP_TRY(expr)                           \
  do {                                            \
    if (auto r_ = (expr); !r_) return r_.error(); \
  } while (0)

namespace kbgap {}  // namespace kbgap
