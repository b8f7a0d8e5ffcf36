"""minidl_models: the classic CNN families (LeNet-5, AlexNet, VGG, GoogLeNet, ResNet) built on minidl.

The models arrive with their own issues; this package holds their place in the layout so that the
dependency direction (minidl_models -> minidl, never back) is fixed from the start.
"""
