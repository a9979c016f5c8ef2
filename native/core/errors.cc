#include "errors.h"

namespace vicinity {

std::string clean_message(const c10::Error& e) {
  std::string message = e.what_without_backtrace();
  // libtorch appends "Exception raised from ... (most recent call first)" in some builds.
  auto cut = message.find("\nException raised from");
  if (cut != std::string::npos) message.resize(cut);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

}  // namespace vicinity
