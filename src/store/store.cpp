#include "store/store.hpp"

#include <utility>

#include "store/impl.hpp"

namespace payorch::store {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kForeign: return "foreign";
    case ErrorCode::kTooNew: return "too_new";
    case ErrorCode::kTooOld: return "too_old";
    case ErrorCode::kMissing: return "missing";
    case ErrorCode::kUnwritable: return "unwritable";
    case ErrorCode::kLocked: return "locked";
    case ErrorCode::kConstraint: return "constraint";
    case ErrorCode::kFull: return "full";
    case ErrorCode::kIo: return "io";
  }
  return "?";
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

const std::string& Store::path() const {
  return impl_->path;
}

}  // namespace payorch::store
