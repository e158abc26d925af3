# build/core.wasm: the pure core (src/core/*.c) plus the wasm ABI (src/core/wasm/*.c) and the
# few mem* symbols clang may call, linked with no libc at all. Included by CMakeLists.txt in
# both the full configure and the wasm-only one (-DSR_WASM_ONLY=ON), which needs clang and
# lld only.
find_program(SR_CLANG NAMES clang-14 clang REQUIRED)
file(GLOB SR_CORE_WASM_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/core/*.c)
file(GLOB SR_WASM_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/core/wasm/*.c)
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/core.wasm
  COMMAND ${SR_CLANG} --target=wasm32 -O2 -nostdlib -ffreestanding -fvisibility=hidden
          -std=c17 -Wall -Wextra -Werror -I${CMAKE_SOURCE_DIR}/src -DSR_VERSION="${PROJECT_VERSION}"
          -fuse-ld=lld -Wl,--no-entry -Wl,--export-dynamic -Wl,-z,stack-size=262144
          -o ${CMAKE_BINARY_DIR}/core.wasm ${SR_CORE_WASM_SRC} ${SR_WASM_SRC}
  DEPENDS ${SR_CORE_WASM_SRC} ${SR_WASM_SRC}
  COMMENT "Building core.wasm"
  VERBATIM)
add_custom_target(core_wasm ALL DEPENDS ${CMAKE_BINARY_DIR}/core.wasm)
