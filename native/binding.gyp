{
  "targets": [
    {
      "target_name": "profinfer_native",
      "sources": [
        "src/addon.cpp",
        "src/tracer.cpp"
      ],
      "include_dirs": [
        "<!@(node -p \"require('node-addon-api').include\")",
        "../bpf",
        "../bpf/build"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').gyp\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Wno-missing-field-initializers"
      ],
      "libraries": [
        "-lbpf",
        "-lelf",
        "-lz"
      ],
      "cflags!": [
        "-fno-exceptions"
      ],
      "cflags_cc!": [
        "-fno-exceptions"
      ]
    },
    {
      "target_name": "ggml-layout-probe",
      "type": "executable",
      "sources": [
        "layout-probe/ggml_layout_probe.c",
        "layout-probe/executable.c"
      ],
      "cflags": [
        "-std=c11",
        "-O2",
        "-Wall",
        "-Wextra"
      ],
      "libraries": [
        "-ldl"
      ]
    },
    {
      "target_name": "ggml-backends-probe",
      "type": "executable",
      "sources": [
        "layout-probe/ggml_backends_probe.c"
      ],
      "cflags": [
        "-std=gnu11",
        "-O2",
        "-Wall",
        "-Wextra"
      ],
      "libraries": [
        "-ldl"
      ]
    },
    {
      "target_name": "profinfer-machine-probe",
      "type": "executable",
      "sources": [
        "machine-probe/machine_probe.c"
      ],
      "cflags": [
        "-std=gnu11",
        "-O2",
        "-march=native",
        "-pthread",
        "-Wall",
        "-Wextra"
      ],
      "libraries": [
        "-pthread"
      ]
    }
  ]
}
