// hqflow_stream_add: the residual add of two streams of one shape, element by element and step by
// step: out[t] = a[t] + b[t] (integers, no overflow: OUT_BITS holds the sum, numerics' residual add;
// A_SIGNED / B_SIGNED: that input's values two's complement, sign-extended).
// Elements carry the T values of one position and channel (step t in bits [t*BITS, (t+1)*BITS)).
// A beat is taken from both inputs at once (a join) into the output register; one element a cycle.
// tlast follows input a. `active` is high in the cycles an element is taken: SIZE per image.
module hqflow_stream_add #(
    parameter integer T = 1, A_BITS = 1, B_BITS = 1, OUT_BITS = 2,
    parameter integer A_SIGNED = 0, B_SIGNED = 0,  // the inputs two's complement (the membrane shortcut's sums)
    parameter integer SIZE = 1             // elements an image (its cycle formula; the core needs no count)
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   a_tvalid,
    output wire                   a_tready,
    input  wire [T*A_BITS-1:0]    a_tdata,
    input  wire                   a_tlast,
    input  wire                   b_tvalid,
    output wire                   b_tready,
    input  wire [T*B_BITS-1:0]    b_tdata,
    output reg                    m_tvalid,
    input  wire                   m_tready,
    output reg  [T*OUT_BITS-1:0]  m_tdata,
    output reg                    m_tlast,
    output wire                   active
);
    initial if (T < 1 || SIZE < 1 || A_BITS < 1 || A_BITS > 64 || B_BITS < 1 || B_BITS > 64 || OUT_BITS < 1 || OUT_BITS > 64)
        $error("hqflow_stream_add: T %0d and SIZE %0d must be >= 1, A_BITS %0d, B_BITS %0d, OUT_BITS %0d in 1..64",
               T, SIZE, A_BITS, B_BITS, OUT_BITS);
    wire take = a_tvalid && b_tvalid && (!m_tvalid || m_tready);
    assign a_tready = take;
    assign b_tready = take;
    assign active = take;
    integer t;
    always @(posedge clk) begin
        if (m_tvalid && m_tready) m_tvalid <= 0;
        if (take) begin
            m_tvalid <= 1;
            m_tlast <= a_tlast;
            for (t = 0; t < T; t = t + 1)
                m_tdata[t*OUT_BITS +: OUT_BITS] <= {{OUT_BITS{A_SIGNED != 0 && a_tdata[t*A_BITS + A_BITS - 1]}},
                                                    a_tdata[t*A_BITS +: A_BITS]}
                                                   + {{OUT_BITS{B_SIGNED != 0 && b_tdata[t*B_BITS + B_BITS - 1]}},
                                                      b_tdata[t*B_BITS +: B_BITS]};
        end
        if (rst) m_tvalid <= 0;
    end
    initial m_tvalid = 0;
endmodule
